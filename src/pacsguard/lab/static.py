"""A plain web server for the lab (not a medical product), bound to 127.0.0.1, HTTP or HTTPS.

Run as ``python -m pacsguard.lab.static --port P --dir D [--cert C --key K]``.
"""

from __future__ import annotations

import argparse
import functools
import ssl
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pacsguard.lab.procs import LOOPBACK, Server


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--cert", type=Path)
    parser.add_argument("--key", type=Path)
    args = parser.parse_args(argv)
    handler = functools.partial(QuietHandler, directory=str(args.dir))
    server = ThreadingHTTPServer((LOOPBACK, args.port), handler)
    if args.cert and args.key:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.cert, args.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


def start_static(name: str, port: int, work: Path, tls: tuple[Path, Path] | None = None) -> Server:
    folder = work / f"web-{name}"
    site = folder / "site"
    site.mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text(
        "<!DOCTYPE html><html><head><title>Intranet</title></head><body>Welcome</body></html>\n",
        encoding="utf-8",
    )
    argv = [
        sys.executable,
        "-m",
        "pacsguard.lab.static",
        "--port",
        str(port),
        "--dir",
        str(site),
    ]
    if tls is not None:
        key, cert = tls
        argv += ["--cert", str(cert), "--key", str(key)]
    server = Server(f"web {name}", argv, folder / "web.log", cwd=folder)
    server.wait_port(port)
    return server


if __name__ == "__main__":
    main()

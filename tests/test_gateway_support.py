"""Helpers for the gateway tests: a config file, the gateway as a process, storescu."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pacsguard.core.keys import ProjectKey
from pacsguard.lab.procs import listening
from test_net_support import dcmtk

KEY = ProjectKey(bytes(range(32)))


def write_key(folder: Path, key: ProjectKey = KEY) -> Path:
    path = folder / "project.key"
    if not path.exists():
        path.write_text(key.material.hex() + "\n")
        path.chmod(0o600)
    return path


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def write_config(
    folder: Path,
    *,
    port: int,
    destinations: Sequence[dict[str, Any]],
    allow: Sequence[dict[str, Any]] = ({"ae_title": "MODALITY1", "host": "127.0.0.1"},),
    extra: dict[str, Any] | None = None,
    tables: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """``tables``: extra [gateway.NAME] tables (tls, stow, status)."""
    lines = [
        "[gateway]",
        'ae_title = "PGGATE"',
        'host = "127.0.0.1"',
        f"port = {port}",
        f"key_file = {toml_value(write_key(folder))}",
        f"state = {toml_value(folder / 'state')}",
        'options = ["retain-long-modified-dates"]',
    ]
    lines += [f"{k} = {toml_value(v)}" for k, v in (extra or {}).items()]
    for name, table in (tables or {}).items():
        lines += ["", f"[gateway.{name}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    for rule in allow:
        lines += ["", "[[gateway.allow]]"] + [f"{k} = {toml_value(v)}" for k, v in rule.items()]
    for dest in destinations:
        routes = dest.get("route", [])
        lines += ["", "[[destination]]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in dest.items() if k != "route"]
        for route in routes:
            lines += ["", "[[destination.route]]"]
            lines += [f"{k} = {toml_value(v)}" for k, v in route.items()]
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class GatewayProcess:
    """``pacsguard gateway run`` in its own process (so that it can be killed with -9)."""

    def __init__(self, config: Path, port: int, log: Path, max_file_size: int | None = None):
        """``max_file_size``: RLIMIT_FSIZE of the process, a disk that fills up."""
        self.config, self.port, self.log = config, port, log
        self.max_file_size = max_file_size
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pacsguard", "gateway", "run", "--config", str(self.config)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=self._limits if self.max_file_size else None,
        )
        handle.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log.read_text()[-2000:]}")
            if listening(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError("gateway did not listen")

    def _limits(self) -> None:
        assert self.max_file_size is not None
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_size, self.max_file_size))

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def pacsguard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pacsguard", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env or dict(os.environ),
        check=False,
    )


def gateway_status(config: Path) -> dict[str, Any]:
    done = pacsguard("gateway", "status", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def wait_for(predicate: Any, timeout: float = 90.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def storescu(
    port: int, files: Sequence[Path], *extra: str, aet: str = "MODALITY1", aec: str = "PGGATE"
) -> subprocess.CompletedProcess[str]:
    """DCMTK storescu with TCP_NODELAY=1; ``-nh`` keeps going after a refused instance."""
    argv = ["storescu", "-aet", aet, "-aec", aec, *extra, "127.0.0.1", str(port), *map(str, files)]
    return dcmtk(argv, timeout=600)

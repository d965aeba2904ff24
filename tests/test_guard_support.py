"""Shared helpers of the guard tests: DCMTK clients (TCP_NODELAY=1), what the PACS saw."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pacsguard.lab.procs import LOOPBACK

ENV = {**os.environ, "TCP_NODELAY": "1"}


@dataclass
class Run:
    argv: list[str]
    returncode: int
    output: str

    def has(self, text: str) -> bool:
        return text in self.output

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.output))


def dcmtk(tool: str, *args: str, timeout: float = 120) -> Run:
    argv = [tool, "-v", *args]
    done = subprocess.run(
        argv, capture_output=True, text=True, env=ENV, timeout=timeout, check=False
    )
    return Run(argv, done.returncode, done.stdout + done.stderr)


def client_args(calling: str, port: int, called: str = "PACS") -> list[str]:
    return ["-aet", calling, "-aec", called, LOOPBACK, str(port)]


def keys(*pairs: str) -> list[str]:
    out: list[str] = []
    for pair in pairs:
        out += ["-k", pair]
    return out


def echo(calling: str, port: int, *extra: str, called: str = "PACS") -> Run:
    return dcmtk("echoscu", *extra, *client_args(calling, port, called))


def find(calling: str, port: int, *pairs: str, extra: tuple[str, ...] = ()) -> Run:
    return dcmtk("findscu", "-S", *extra, *keys(*pairs), *client_args(calling, port))


def move(calling: str, port: int, destination: str, *pairs: str) -> Run:
    return dcmtk("movescu", "-S", "-aem", destination, *keys(*pairs), *client_args(calling, port))


def get(calling: str, port: int, out: Path, *pairs: str) -> Run:
    out.mkdir(parents=True, exist_ok=True)
    return dcmtk("getscu", "-S", "-od", str(out), *keys(*pairs), *client_args(calling, port))


def store(calling: str, port: int, *files: Path) -> Run:
    return dcmtk("storescu", *client_args(calling, port), *map(str, files))


def echo_ok(run: Run) -> bool:
    return run.returncode == 0 and run.has("Received Echo Response (Success)")


def find_ok(run: Run) -> bool:
    return run.has("Received Final Find Response (Success)")


def move_ok(run: Run) -> bool:
    return run.returncode == 0 and run.has("Received Final Move Response (Success)")


def get_ok(run: Run) -> bool:
    return run.has("Received C-GET Response (Success)")


def store_ok(run: Run) -> bool:
    return run.has("Received Store Response (Success)")


def find_responses(run: Run) -> int:
    return run.count(r"Find Response: \d+ \(Pending\)")


def rejected(run: Run) -> bool:
    return run.has("Association Rejected")


class PacsLog:
    """What dcmqrscp logged: the associations and the DIMSE requests it received.

    dcmqrscp's children write their log lines when they exit, at the end of each of its
    associations: ``drain`` (the guard's) releases the guard's idle pooled associations to
    the PACS first, wherever a test reads what the PACS has seen."""

    def __init__(self, path: Path, drain: Callable[[], None] | None = None) -> None:
        self.path = path
        self.drain = drain

    def requests(self) -> Counter[str]:
        lines = self.path.read_text(errors="replace").splitlines()
        seen: Counter[str] = Counter()
        for i, line in enumerate(lines[:-1]):
            if "INCOMING DIMSE MESSAGE" in line:
                match = re.search(r"Message Type\s+: (\S+ RQ)", lines[i + 1])
                if match:
                    seen[match.group(1)] += 1
            elif "Received Echo SCP RQ" in line:  # dcmqrscp logs C-ECHO on one line
                seen["C-ECHO RQ"] += 1
            elif "Association Received" in line:
                seen["association"] += 1
                match = re.search(r"\(([^:]+):([^ ]+) -> ([^)]+)\)", line)
                if match:
                    seen[f"from {match.group(2)} to {match.group(3)}"] += 1
        return seen

    def quiet(self, guard: Any, wait: float = 10.0) -> Counter[str]:
        """What the PACS saw so far, once the guard holds no association and the log has
        stopped growing (dcmqrscp's children write their log lines when they exit)."""
        deadline = time.monotonic() + wait
        size = -1
        while time.monotonic() < deadline:
            if self.drain is not None:
                self.drain()
            busy = bool(guard._sessions)
            now = self.path.stat().st_size
            if not busy and now == size:
                break
            size = now
            time.sleep(0.3)
        return self.requests()

    def settled(
        self, before: Counter[str], want: dict[str, int], wait: float = 5.0
    ) -> Counter[str]:
        """The delta since ``before``, once it reaches ``want`` (or after ``wait``)."""
        deadline = time.monotonic() + wait
        while True:
            if self.drain is not None:
                self.drain()
            delta = self.requests() - before
            if all(delta[k] >= v for k, v in want.items()) or time.monotonic() > deadline:
                return delta
            time.sleep(0.05)

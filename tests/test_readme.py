"""The README is executable: every ``sh`` block runs as written, in order (``python`` blocks
too), in a fresh folder; a block that fails fails the test. ``text`` blocks are synopses
and the outer ``make`` commands, not run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
KINDS = {"sh", "python", "text"}


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer((ROOT / "README.md").read_text())]


def script() -> str:
    lines = ["set -euo pipefail"]
    for kind, body in blocks():
        if kind == "sh":
            lines += [f"echo '+ {line}'" for line in body.splitlines()[:1]] + [body]
        elif kind == "python":
            lines += [f"{sys.executable} - <<'PY'", body.rstrip("\n"), "PY"]
    return "\n".join(lines) + "\n"


def test_every_fence_says_what_it_is() -> None:
    kinds = [kind for kind, _ in blocks()]
    assert kinds and set(kinds) <= KINDS, kinds
    assert kinds.count("sh") >= 8


def test_walkthrough_runs_as_written(tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACSGUARD_") and k != "COLUMNS"}
    env.update(
        PATH=bin_dir + os.pathsep + env.get("PATH", ""),
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "home" / "data"),
        TCP_NODELAY="1",
    )
    run = subprocess.run(
        ["bash", "-c", script()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    assert "Traceback" not in output
    demo = tmp_path / "demo"
    for made in (
        "dicom", "clinical/export.csv", "scan.html", "deid/pacsguard-deid.json", "mapping.csv",
        "verify.html", "policy.yaml", "tables/export.csv", "tables/pacsguard-tables.json",
        "package.age.001", "received/pacsguard-deid.json", "with-age/pacsguard-deid.json",
        "deid-from-python",
    ):  # fmt: skip
        assert (demo / made).exists(), made
    key = (demo / "project.key").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{64}", key)  # "32 random bytes, written as 64 hex characters"
    assert (demo / "project.key").stat().st_mode & 0o777 == 0o600
    assert len(list(demo.glob("package.age.*"))) > 1  # split: the `cat` form is the one run
    assert "l-diversity=" in output and "signature verified" in output

"""The command's start-up: modules pydicom imports but a run never uses are deferred, not lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = """
import json, os, sys
from pacsguard.core.startup import prepare_process
prepare_process()
prepare_process()
import pydicom
before = {name: type(sys.modules[name]).__name__ for name in ("requests", "tqdm", "urllib.request")}
import requests, tqdm, urllib.request
usable = [callable(requests.get), callable(tqdm.tqdm), callable(urllib.request.urlopen)]
after = {name: type(sys.modules[name]).__name__ for name in ("requests", "tqdm", "urllib.request")}
finders = sum(type(f).__name__ == "_DeferringFinder" for f in sys.meta_path)
print(json.dumps({"before": before, "after": after, "usable": usable, "finders": finders,
                  "blas": os.environ.get("OPENBLAS_NUM_THREADS")}))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_pydicom_imports_without_running_its_download_modules() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    result = _probe(env)
    assert result["before"] == {
        name: "_LazyModule" for name in ("requests", "tqdm", "urllib.request")
    }
    assert result["usable"] == [True, True, True]
    assert result["after"] == {name: "module" for name in ("requests", "tqdm", "urllib.request")}
    assert result["finders"] == 1
    assert result["blas"] == "1"


def test_the_environment_keeps_its_own_blas_setting() -> None:
    result = _probe({**os.environ, "OPENBLAS_NUM_THREADS": "4"})
    assert result["blas"] == "4"


def test_a_missing_module_still_raises_import_error() -> None:
    code = (
        "from pacsguard.core.startup import prepare_process\n"
        "prepare_process(['pacsguard_no_such_module'])\n"
        "try:\n    import pacsguard_no_such_module\nexcept ImportError:\n    print('refused')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "refused"

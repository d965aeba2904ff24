"""The command's start-up: modules pydicom imports but a run never uses are deferred, not lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

NAMES = ("requests", "tqdm", "urllib.request", "PIL.ImageCms", "pydicom.examples")
PROBE = """
import json, os, sys
from pacsguard.core.startup import prepare_process
prepare_process()
prepare_process()
import pydicom
names = ("requests", "tqdm", "urllib.request", "PIL.ImageCms", "pydicom.examples")
before = {name: type(sys.modules[name]).__name__ for name in names}
import requests, tqdm, urllib.request
from PIL import ImageCms
from pydicom import examples
usable = [callable(requests.get), callable(tqdm.tqdm), callable(urllib.request.urlopen),
          ImageCms.createProfile("sRGB") is not None, examples.ct.Modality == "CT"]
after = {name: type(sys.modules[name]).__name__ for name in names}
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
    assert result["before"] == dict.fromkeys(NAMES, "_LazyModule")
    assert result["usable"] == [True] * 5
    assert result["after"] == dict.fromkeys(NAMES, "module")
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


REGISTRY_PROBE = """
import hashlib, json, sys
from pacsguard.core.startup import prepare_process
if sys.argv[1] == "prepared":
    prepare_process()
import pydicom
import pydicom.config
after_import = sorted(
    name for name in ("gdcm", "pylibjpeg", "openjpeg", "libjpeg", "rle", "jpeg_ls",
                      "pydicom.pixels.decoders.gdcm", "pydicom.pixels.decoders.pylibjpeg",
                      "pydicom.pixels.decoders.pillow", "pydicom.pixels.encoders.gdcm")
    if name in sys.modules
)
if sys.argv[2] == "codec":
    import pacsguard.deid.pixels.codec  # removes pydicom's GDCM plugin, adds pacsguard's
from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS
from pydicom.pixels.encoders.base import _PIXEL_DATA_ENCODERS
docs = {str(uid): coder.__doc__ for uid, (coder, _) in
        [*_PIXEL_DATA_DECODERS.items(), *_PIXEL_DATA_ENCODERS.items()]}
coders = {
    f"{kind} {uid}": [list(coder._available), sorted(coder._unavailable.items()),
                      coder.available_plugins, coder.is_available]
    for kind, table in (("decoder", _PIXEL_DATA_DECODERS), ("encoder", _PIXEL_DATA_ENCODERS))
    for uid, (coder, _) in table.items()
}
handlers = [[h.__name__, bool(h.is_available())] for h in pydicom.config.pixel_data_handlers]
pixels = {}
for path in sys.argv[3:]:
    ds = pydicom.dcmread(path)
    pixels[path.rsplit("/", 1)[1]] = hashlib.sha256(ds.pixel_array.tobytes()).hexdigest()
print(json.dumps({"after_import": after_import, "docs": docs, "coders": coders,
                  "handlers": handlers, "pixels": pixels}))
"""

COMPRESSED = (
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline
    "JPEG2000.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "SC_rgb_small_odd_jpeg.dcm",
)


def _registry(mode: str, after: str, files: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", REGISTRY_PROBE, mode, after, *files],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _compressed() -> list[str]:
    from conftest import local_test_files

    found = {p.name: str(p) for p in local_test_files()}
    files = [found[name] for name in COMPRESSED if name in found]
    assert len(files) >= 3, "pydicom's test files for the compressed syntaxes are missing"
    return files


def test_pixel_plugins_load_on_first_use_as_pydicom_registers_them() -> None:
    """Prepared, ``import pydicom`` imports no codec library; the registry then holds the
    same plugins in the same order (pydicom tries them in that order), the docstrings are
    pydicom's, the older handlers say the same, and the pixels decode the same."""
    files = _compressed()
    plain = _registry("plain", "-", files)
    prepared = _registry("prepared", "-", files)
    assert prepared["after_import"] == []
    assert "gdcm" in str(
        plain["after_import"]
    )  # what the deferral saves (python-gdcm is a dependency)
    for part in ("coders", "docs", "handlers", "pixels"):
        assert prepared[part] == plain[part], part
    assert len(prepared["pixels"]) == len(files)  # type: ignore[arg-type]


def test_a_plugin_removed_before_use_is_never_imported() -> None:
    """pacsguard's codec removes pydicom's GDCM plugin and adds its own: same registry."""
    plain = _registry("plain", "codec", [])
    prepared = _registry("prepared", "codec", [])
    assert prepared["coders"] == plain["coders"]
    decoders = {k: v for k, v in prepared["coders"].items() if k.startswith("decoder")}  # type: ignore[attr-defined]
    assert "'gdcm'" not in str(decoders)


def test_a_late_add_plugin_is_pydicom_s_own() -> None:
    """After the import, ``add_plugin`` registers at once, with pydicom's own checks."""
    code = (
        "from pacsguard.core.startup import prepare_process\n"
        "prepare_process()\n"
        "import sys\n"
        "from pydicom.pixels.decoders.base import get_decoder\n"
        "from pydicom.uid import RLELossless\n"
        "decoder = get_decoder(RLELossless)\n"
        "try:\n"
        "    decoder.add_plugin('pydicom', ('pydicom.pixels.decoders.rle', '_decode_frame'))\n"
        "except ValueError:\n"
        "    print('refused')\n"
        "decoder.remove_plugin('pydicom')\n"
        "print(list(decoder._available))\n"
        "try:\n"
        "    decoder.remove_plugin('pydicom')\n"
        "except ValueError:\n"
        "    print('gone')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    plain = subprocess.run(
        [sys.executable, "-c", code.replace("prepare_process()\n", "")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == plain.stdout
    assert done.stdout.splitlines()[0] == "refused"
    assert done.stdout.splitlines()[-1] == "gone"


def test_a_kept_module_runs_on_first_use_and_stays_itself() -> None:
    code = (
        "import sys\n"
        "from pacsguard.core.startup import prepare_process\n"
        "prepare_process()\n"
        "import pydicom.config\n"
        "handler = sys.modules['pydicom.pixel_data_handlers.gdcm_handler']\n"
        "before = type(handler).__name__\n"
        "import pydicom.pixel_data_handlers.gdcm_handler as again\n"
        "still = type(handler).__name__\n"
        "available = handler.is_available()\n"
        "print(before, still, type(handler).__name__, again is handler, 'gdcm' in sys.modules,"
        " handler in pydicom.config.pixel_data_handlers, available)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == [
        "_KeptModule",
        "_KeptModule",
        "module",
        "True",
        "True",
        "True",
        "True",
    ]


def test_without_pixel_plugins_nothing_of_pydicom_is_deferred() -> None:
    code = (
        "import sys\n"
        "from pacsguard.core.startup import prepare_process\n"
        "prepare_process(pixel_plugins=False)\n"
        "import pydicom\n"
        "print('gdcm' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "True"


PLAIN_MAIN = """
import sys
from pacsguard.cli import main
main(sys.argv[1:])
"""


def test_a_prepared_deid_writes_what_an_unprepared_one_writes(tmp_path: Path) -> None:
    """End to end, images cleaned of burned-in text included (codecs and OCR loaded on first
    need): the console (prepared) and ``main`` in a bare interpreter write the same bytes."""
    import hashlib

    from pacsguard.sample.generator import generate

    answer = generate(tmp_path / "s", seed=7, patients=1)
    assert any(b.location == "pixels" for b in answer.burned_in)
    key = tmp_path / "k"
    subprocess.run(
        [sys.executable, "-m", "pacsguard", "key", "new", str(key)], check=True, capture_output=True
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PACSGUARD_KEY_FILE", "PACSGUARD_KEY")}
    trees = {}
    for name, start in (("prepared", ["-m", "pacsguard"]), ("plain", ["-c", PLAIN_MAIN])):
        out = tmp_path / name
        done = subprocess.run(
            [sys.executable, *start, "deid", str(tmp_path / "s" / "dicom"), str(out),
             "--key", str(key), "-j", "2"],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "pixels cleaned" in done.stderr
        trees[name] = {
            str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in out.rglob("*.dcm")
        }
    assert trees["prepared"] == trees["plain"]
    assert len(trees["prepared"]) >= 10


THREADS_PROBE = """
import json, sys, threading
from pacsguard.core.startup import prepare_process
if sys.argv[1] == "prepared":
    prepare_process()
from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS
coders = [coder for coder, _ in _PIXEL_DATA_DECODERS.values()]
seen = {}
gate = threading.Barrier(4)
def read(n):
    gate.wait()
    seen[n] = [list(c._available) + sorted(c._unavailable) for c in coders]
threads = [threading.Thread(target=read, args=(n,)) for n in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(seen[0]) if all(seen[n] == seen[0] for n in seen) else "threads disagree")
"""


def test_threads_reading_the_registry_at_once_see_it_whole() -> None:
    runs = {
        mode: subprocess.run(
            [sys.executable, "-c", THREADS_PROBE, mode], capture_output=True, text=True, check=True
        ).stdout
        for mode in ("prepared", "plain")
    }
    assert runs["prepared"] == runs["plain"]
    assert "disagree" not in runs["prepared"]


NUMPY_PROBE = """
import collections, sys
runs = collections.Counter()
def count(event, args):
    code = args[0] if event == "exec" and args else None
    if getattr(code, "co_name", "") == "<module>" and "/numpy/" in code.co_filename:
        runs[code.co_filename.split("/numpy/", 1)[1]] += 1
sys.addaudithook(count)
from pacsguard.core.startup import prepare_process
prepare_process()
import pydicom
before = type(sys.modules["numpy"]).__name__
__import__(sys.argv[1])  # a submodule first, before any attribute of numpy
import numpy
whole = isinstance(numpy.arange(4), numpy.ndarray) and numpy.linalg.norm([3, 4]) == 5
twice = sorted(name for name, n in runs.items() if n > 1) or ["none"]
print(before, type(sys.modules["numpy"]).__name__, whole, *twice)
"""


@pytest.mark.parametrize(
    "first", ["numpy", "numpy.linalg", "numpy._core._multiarray_umath", "numpy.typing"]
)
def test_numpy_is_kept_until_first_use_then_runs_each_module_once(first: str) -> None:
    """A submodule imported first (``import numpy.linalg``, or ``numpy._core`` through a C
    extension's ``import_array``) runs numpy's own code, which imports that submodule; the
    import that had begun must then take that module, not execute it a second time (two
    module objects, numpy's names bound to the first: the sixth stop's reason not to keep
    numpy)."""
    done = subprocess.run(
        [sys.executable, "-c", NUMPY_PROBE, first], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["_KeptModule", "module", "True", "none"], first


def test_a_kept_package_s_submodule_imported_first_runs_once(tmp_path: Path) -> None:
    package = tmp_path / "keptpkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "from . import sub\nfrom .inner import leaf\nSUB, LEAF = sub.X, leaf.Y\n"
    )
    (package / "sub.py").write_text("print('sub')\nX = object()\n")
    (package / "inner" / "__init__.py").write_text("from . import leaf\n")
    (package / "inner" / "leaf.py").write_text("print('leaf')\nY = object()\n")
    for first in ("keptpkg.sub", "keptpkg.inner.leaf", "keptpkg.inner", "keptpkg"):
        code = (
            f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
            "from pacsguard.core.startup import prepare_process\n"
            "prepare_process(kept=['keptpkg'])\n"
            f"import {first}\n"
            "import keptpkg, keptpkg.sub, keptpkg.inner.leaf\n"
            "print(keptpkg.SUB is keptpkg.sub.X, keptpkg.LEAF is keptpkg.inner.leaf.Y,"
            " type(keptpkg.sub.__spec__.loader).__name__)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert done.stdout.split() == ["sub", "leaf", "True", "True", "SourceFileLoader"], first


BYTE_PATH_RUN = """
import sys
from pacsguard.core.startup import prepare_process
prepare_process()
from pacsguard.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit_:
    assert not exit_.code, exit_.code
print(type(sys.modules["numpy"]).__name__)
"""


def test_a_byte_path_run_never_runs_numpy(tmp_path: Path) -> None:
    """The files of a CT series that need no pixel work take the byte path, which reads and
    writes no value through numpy: the ~80 ms of numpy's import are spent only by runs that
    decode pixels (the run above, with burned-in text, does)."""
    from pacsguard.sample.corpus import generate_ct_corpus

    generate_ct_corpus(tmp_path / "in", files=3, seed=3)
    (tmp_path / "in" / "corpus.json").unlink()  # the generator's answer key, not an input
    key = tmp_path / "k"
    subprocess.run(
        [sys.executable, "-m", "pacsguard", "key", "new", str(key)], check=True, capture_output=True
    )
    done = subprocess.run(
        [sys.executable, "-c", BYTE_PATH_RUN, "deid", str(tmp_path / "in"), str(tmp_path / "out"),
         "--key", str(key), "-j", "1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "3 byte-level" in done.stderr
    assert done.stdout.strip() == "_KeptModule"


SLOW_MODULE_PROBE = """
import sys, threading, time
sys.path.insert(0, sys.argv[1])
from pacsguard.core.startup import prepare_process
prepare_process(kept=["slowmodule"])
import slowmodule
seen = {}
def read(name, delay):
    time.sleep(delay)
    try:
        seen[name] = slowmodule.LAST
    except AttributeError as exc:
        seen[name] = f"AttributeError: {exc}"
threads = [threading.Thread(target=read, args=("first", 0)),
           threading.Thread(target=read, args=("second", 0.1))]
for t in threads: t.start()
for t in threads: t.join()
print(seen["first"], seen["second"], type(slowmodule).__name__)
"""


def test_a_thread_reading_a_kept_module_while_it_runs_waits_for_it(tmp_path: Path) -> None:
    """numpy is kept: the gateway's association threads may first use it at once. A second
    thread must find the module whole, never half-run."""
    (tmp_path / "slowmodule.py").write_text("import time\nFIRST = 1\ntime.sleep(0.4)\nLAST = 2\n")
    done = subprocess.run(
        [sys.executable, "-c", SLOW_MODULE_PROBE, str(tmp_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.split() == ["2", "2", "module"]


def test_numpy_is_kept_by_the_batch_commands_not_by_the_threaded_ones() -> None:
    """The gateway's and the guard's threads may use numpy first at once; a kept module run
    from inside the import system cannot wait on another thread safely."""
    from pacsguard.cli import kept_modules

    assert kept_modules(["deid", "in", "out"]) == ("numpy",)
    assert kept_modules(["--version"]) == ("numpy",)
    for threaded in (["gateway", "run", "-c", "gw.toml"], ["guard", "run", "-c", "g.toml"],
                     ["scan", "127.0.0.1"]):  # fmt: skip
        assert kept_modules(threaded) == ()

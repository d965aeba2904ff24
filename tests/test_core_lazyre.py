"""Detector patterns compile on first use, and answer as ``re`` does."""

from __future__ import annotations

import re
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from pacsguard.core import lazyre, names, shapes


def _patterns() -> list[lazyre.Pattern]:
    found = []
    for module in (shapes, names):
        for value in vars(module).values():
            for item in value if isinstance(value, tuple) else (value,):
                if isinstance(item, lazyre.Pattern):
                    found.append(item)
    return found


def test_the_detectors_patterns_are_all_lazy() -> None:
    assert len(_patterns()) >= 29
    assert not [name for name, value in vars(shapes).items() if isinstance(value, re.Pattern)]
    assert not [name for name, value in vars(names).items() if isinstance(value, re.Pattern)]


def test_importing_the_detectors_compiles_none_of_them() -> None:
    code = (
        "import re, sys\n"
        "compiled = []\n"
        "real = re.compile\n"
        "re.compile = lambda *a, **k: compiled.append(a[0]) or real(*a, **k)\n"
        "import pacsguard.core.shapes\n"
        "print(len([p for p in compiled if 'INS' in str(p) or '@' in str(p)]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"


@given(st.text(alphabet="0123456789 .-+@abcINS()/", max_size=40))
def test_every_method_answers_as_re(text: str) -> None:
    for lazy in _patterns():
        real = re.compile(lazy.pattern, lazy.flags)
        assert [m.span() for m in lazy.finditer(text)] == [m.span() for m in real.finditer(text)]
        for method in ("search", "match", "fullmatch"):
            got, want = getattr(lazy, method)(text), getattr(real, method)(text)
            assert (got and got.span()) == (want and want.span())
        assert lazy.findall(text) == real.findall(text)
        assert lazy.split(text) == real.split(text)
        assert lazy.sub("#", text) == real.sub("#", text)

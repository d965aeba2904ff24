"""A header recalled from the walk memo is the header the strict walk gives, byte for byte.

``walkmemo.WalkMemo`` lets the gate and the post-write check skip the walk of a header
whose structure is the remembered one's; everything the walk decides must come out the
same: the nodes, the anomalies (none, or no recall), the Pixel Data offset, the errors.
Held on pydicom's shipped files, the sample corpus in order (as a run meets it), values
rewritten with hostile bytes, bytes flipped anywhere, the mutants of ``sample.mutate``,
and whole runs with and without the memo. What is derived from a header and carried from
one recalled header to the next (``Derived``: the identity, the rewriter's layout) is held
to the same product made afresh, on the same inputs.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import local_test_files
from pacsguard.deid import grammar, rawpath
from pacsguard.deid.identity import gather, gathered_from
from pacsguard.deid.walkmemo import Derived, WalkMemo
from pacsguard.sample import AnswerKey
from pacsguard.sample.mutate import NotApplicable, strategies, uniquify

_ALPHABET = b"0123456789.\\ ^-+eEAZaz\x00\x01\x1b\x7f\xc3\xa9"


def _reading(data: bytes, memo: WalkMemo | None) -> object:
    """What the gate makes of ``data``, read as the pipeline reads a file (a prefix)
    and as a whole: the headers' parts, or the error."""
    out: list[object] = []
    for whole in (False, True):
        try:
            if whole:
                header = grammar.parse(data, whole=True, memo=memo)
            else:
                header, _ = grammar.read_header(io.BytesIO(data), len(data), memo)
        except grammar.GrammarError as exc:
            out.append(("error", str(exc)))
            continue
        out.append(
            (header.syntax, header.implicit, header.little, header.elements,
             header.anomalies, header.pixel_offset, header.buf is data or whole)
        )  # fmt: skip
    return out


def _primed(data: bytes) -> WalkMemo | None:
    """A memo that remembers ``data`` (None when its walk is not clean or has no pixels)."""
    memo = WalkMemo()
    try:
        header = grammar.parse(data, whole=True, memo=memo)
    except grammar.GrammarError:
        return None
    if header.anomalies or header.pixel_offset is None:
        return None
    return memo


def _same_with_and_without(original: bytes, mutant: bytes) -> int:
    """Assert the memo primed with ``original`` reads ``mutant`` as the walk does; the
    number of recalls it made."""
    memo = _primed(original)
    if memo is None:
        return 0
    before = memo.recalled
    assert _reading(mutant, memo) == _reading(mutant, None)
    return memo.recalled - before


def _leaves(data: bytes) -> list[grammar.Node]:
    header = grammar.parse(data, whole=True)
    found, pending = [], [header.elements]
    while pending:
        for node in pending.pop():
            if node.items is not None:
                pending.extend(node.items)
            elif node.end > node.value and node.tag not in grammar.PIXEL_TAGS:
                found.append(node)
    return found


def _rewrite_values(data: bytes, rng: random.Random, count: int) -> bytes:
    """``data`` with the values of ``count`` leaves overwritten in place, same lengths."""
    out = bytearray(data)
    leaves = _leaves(data)
    for node in rng.sample(leaves, min(count, len(leaves))):
        if rng.random() < 0.5:  # a value the VR allows, often: digits and dots
            new = bytes(rng.choice(b"0123456789.") for _ in range(node.end - node.value))
        else:
            new = bytes(rng.choice(_ALPHABET) for _ in range(node.end - node.value))
        out[node.value : node.end] = new
    return bytes(out)


def _flip(data: bytes, rng: random.Random, count: int) -> bytes:
    out = bytearray(data)
    for _ in range(count):
        at = rng.randrange(len(out))
        out[at] = rng.randrange(256)
    return bytes(out)


def _clean_with_pixels(paths: list[Path]) -> list[bytes]:
    return [data for data in (p.read_bytes() for p in paths) if _primed(data) is not None]


def test_shipped_files_rewritten_and_flipped_read_as_walked() -> None:
    files = _clean_with_pixels(local_test_files())
    assert len(files) >= 20
    rng = random.Random(14)
    recalled = 0
    for data in files:
        recalled += _same_with_and_without(data, data)
        for _ in range(6):
            recalled += _same_with_and_without(data, _rewrite_values(data, rng, rng.randint(1, 5)))
            recalled += _same_with_and_without(data, _flip(data, rng, rng.randint(1, 3)))
    assert recalled >= len(files) * 2  # the memo was used, not only declined


def test_a_series_in_order_reads_as_walked(sample_corpus: tuple[Path, AnswerKey]) -> None:
    root, _ = sample_corpus
    memo = WalkMemo()
    files = sorted(root.rglob("*.dcm"))
    for path in files:
        data = path.read_bytes()
        assert _reading(data, memo) == _reading(data, None)
    assert memo.recalled >= len(files) // 4


def test_a_refused_value_is_not_recalled_and_gets_the_walks_reason() -> None:
    """The comparison has teeth: a memo that skipped the value checks would be told."""
    data = next(d for d in _clean_with_pixels(local_test_files()) if _text_leaf(d) is not None)
    node = _text_leaf(data)
    assert node is not None
    broken = bytearray(data)
    broken[node.value] = 0x01  # a control byte inside a text value
    memo = _primed(data)
    assert memo is not None
    header = grammar.parse(bytes(broken), whole=True, memo=memo)
    assert memo.recalled == 0 and header.anomalies
    assert header.anomalies == grammar.parse(bytes(broken), whole=True).anomalies


def test_a_changed_structure_is_walked() -> None:
    data = _clean_with_pixels(local_test_files())[0]
    header = grammar.parse(data, whole=True)
    first = header.elements[0]
    changed = bytearray(data)
    changed[first.value - 2] ^= 0x02  # the first element's length: the structure
    memo = _primed(data)
    assert memo is not None
    assert _reading(bytes(changed), memo) == _reading(bytes(changed), None)
    assert memo.recalled == 0


def _text_leaf(data: bytes) -> grammar.Node | None:
    for node in _leaves(data):
        rule = grammar._element_rule(node.tag, node.vr, False)
        if rule is not None and rule[1] in ("LO", "SH", "PN", "CS", "UI"):
            return node
    return None


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    pick=st.integers(0, 10**6),
    how=st.sampled_from(["values", "flip", "mutant"]),
)
def test_mutants_of_the_sample_corpus_read_as_walked(
    sample_corpus: tuple[Path, AnswerKey], seed: int, pick: int, how: str
) -> None:
    root, _ = sample_corpus
    files = sorted(root.rglob("*.dcm"))
    data = files[pick % len(files)].read_bytes()
    rng = random.Random(seed)
    if how == "values":
        mutant = _rewrite_values(data, rng, rng.randint(1, 8))
    elif how == "flip":
        mutant = _flip(data, rng, rng.randint(1, 4))
    else:
        pool = strategies(("Doe^Jane", "PID12345"))
        try:
            mutant = pool[rng.randrange(len(pool))].mutate(uniquify(data, 1), rng).data
        except NotApplicable:
            return
    _same_with_and_without(data, mutant)


def test_runs_with_and_without_the_memo_write_the_same_files(
    sample_corpus: tuple[Path, AnswerKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pacsguard.core.keys import ProjectKey
    from pacsguard.deid import DeidConfig, pipeline

    root, _ = sample_corpus
    key = ProjectKey(b"k" * 32)
    trees = []
    for name, memo_on in (("with", True), ("without", False)):
        if not memo_on:
            monkeypatch.setattr(WalkMemo, "recall", lambda *_: None)
        out = tmp_path / name
        config = DeidConfig(jobs=1, burned_in="keep")  # no OCR: the headers are the point
        pipeline.deidentify([root], out, key=key, config=config)
        trees.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*.dcm")})
    assert trees[0] and trees[0] == trees[1]


def _products() -> tuple[Derived[object], Derived[object]]:
    identity: Derived[object] = Derived(lambda h, _: gather(h), gathered_from())
    layout: Derived[object] = Derived(
        lambda h, key: rawpath.layout_of(h, key[0]),  # type: ignore[index]
        rawpath.layout_reads,
    )
    return identity, layout


def _derived_as_made(
    data: bytes,
    memo: WalkMemo,
    identity: Derived[object],
    layout: Derived[object],
) -> None:
    """The carried products of ``data`` read through ``memo`` are those made afresh."""
    try:
        header = grammar.parse(data, whole=True, memo=memo)
    except grammar.GrammarError:
        return
    assert identity(header) == gather(header)
    made = rawpath.layout_of(header, len(data))
    assert layout(header, rawpath.layout_key(header, len(data))) == made


def test_derived_products_of_a_series_are_those_made_afresh(
    sample_corpus: tuple[Path, AnswerKey],
) -> None:
    root, _ = sample_corpus
    memo, (identity, layout) = WalkMemo(), _products()
    files = sorted(root.rglob("*.dcm"))
    for path in files:
        _derived_as_made(path.read_bytes(), memo, identity, layout)
    assert identity.reused >= len(files) // 8 and layout.reused >= len(files) // 8


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 10**6), values=st.integers(1, 8))
def test_derived_products_of_rewritten_values_are_those_made_afresh(
    sample_corpus: tuple[Path, AnswerKey], seed: int, pick: int, values: int
) -> None:
    root, _ = sample_corpus
    files = sorted(root.rglob("*.dcm"))
    data = files[pick % len(files)].read_bytes()
    memo, (identity, layout) = WalkMemo(), _products()
    _derived_as_made(data, memo, identity, layout)
    _derived_as_made(_rewrite_values(data, random.Random(seed), values), memo, identity, layout)


def test_a_changed_name_is_gathered_again() -> None:
    """The comparison has teeth: an identity carried past a changed name is told."""
    data = next(
        d
        for d in _clean_with_pixels(local_test_files())
        if any(n.tag == 0x00100010 and n.end - n.value >= 4 for n in _leaves(d))
    )
    name = next(n for n in _leaves(data) if n.tag == 0x00100010)
    other = bytearray(data)
    other[name.value : name.value + 4] = b"ZQXW"
    for reads, fresh in ((gathered_from(), True), (lambda _node: False, False)):
        memo = WalkMemo()
        carried: Derived[object] = Derived(lambda h, _: gather(h), reads)
        carried(grammar.parse(data, whole=True, memo=memo))
        header = grammar.parse(bytes(other), whole=True, memo=memo)
        assert memo.recalled == 1
        assert (carried(header) == gather(header)) is fresh


def test_two_shapes_in_turn_are_both_recalled() -> None:
    """A series whose slices alternate between two shapes (every other one with a comment)
    is recalled from both, each against its own last version, and read as walked."""
    files = _clean_with_pixels(local_test_files())
    first, second = files[0], next(d for d in files[1:] if len(d) != len(files[0]))
    memo, carried, (identity, layout) = WalkMemo(), WalkMemo(), _products()
    rng = random.Random(3)
    for data in (first, second) * 4:
        variant = _rewrite_values(data, rng, 1)
        assert _reading(variant, memo) == _reading(variant, None)
        _derived_as_made(variant, carried, identity, layout)  # one parse a file, as a run
    # the first of each shape is walked, and any whose changed value the grammar refuses
    assert memo.recalled >= 6 and carried.recalled >= 3 and layout.reused >= 2
    assert len(memo._shapes) == len(carried._shapes) == 2

"""The last clean walk of a header, to recognise the next header of the same shape.

Slices of one series carry headers that differ only in a few values (the instance's UID,
its number, its position), byte for byte the same everywhere else. The strict walk
(``grammar``) is a function of the bytes it reads: element and item headers, lengths,
delimiters, and the values it checks. A header whose every byte outside the leaf values
equals the remembered one's, up to and including its Pixel Data element header, walks to
the same nodes; only the values that changed can change the verdict, and each of those is
checked here by the walk's own rule (``grammar.value_problem``). Anything else (another
length, another structure, a changed value the grammar refuses, a remembered header that
had anomalies) is not recalled: the full walk runs, and gives its own reasons.

What is made from a header (its identity, the rewriter's layout) is carried the same way
(:class:`Derived`): from one version of a shape to the next, as long as none of the leaves
it reads changed value; otherwise it is made again from the header.

``tests/test_deid_walkmemo.py`` holds recall to the full walk, and each derived product to
the same product made afresh, on mutated and shipped files. The nodes of a recalled header
are those of the remembered one (nobody changes nodes after the walk); their offsets hold
for the new bytes because the structure is the same.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from pacsguard.deid.grammar import (
    PIXEL_HEAD,
    PIXEL_TAGS,
    TEXT_VRS,
    Header,
    Node,
    Recall,
    _element_rule,
    value_problem,
)

T = TypeVar("T")
SHAPES = 4  # shapes a memo keeps


@dataclass(slots=True, eq=False)  # one shape is itself: a key by identity
class _Shape:
    start: int  # where the walked dataset begins in the buffer
    stop: int  # the end of the Pixel Data element's header: the last byte the walk read
    implicit: bool
    little: bool
    nodes: list[Node]
    pixel_offset: int
    bits: int  # the bytes [start, stop) of the header last recalled or walked, as an integer
    structure: int  # 1-bits over every byte that is not a leaf's value
    values: list[int]  # the leaves' value offsets, ascending (bisect)
    leaves: list[tuple[int, int, str | None, Node]]  # (value, end, VR its text must suit)
    version: int = 0


class WalkMemo:
    """The last few shapes walked, most recent first: a stream of the same kind of header
    (one memo for a run's inputs, one for its outputs), where a series may alternate
    between a few shapes (a slice with a comment, the next without)."""

    __slots__ = ("_shapes", "recalled")

    def __init__(self) -> None:
        self._shapes: list[_Shape] = []
        self.recalled = 0  # headers recalled, not walked (figures, tests)

    def recall(
        self, data: bytes, start: int, implicit: bool, little: bool
    ) -> tuple[list[Node], int, Recall] | None:
        """(nodes, Pixel Data offset, recall) of ``data`` when it has one of the remembered
        shapes and clean values; None when it must be walked."""
        for shape in self._shapes:
            if (
                shape.start != start
                or shape.implicit != implicit
                or shape.little != little
                or len(data) < shape.stop
            ):
                continue
            new = int.from_bytes(data[start : shape.stop], "little")
            changed = new ^ shape.bits
            if changed & shape.structure:
                continue
            leaves: list[Node] = []
            base = start  # ``changed`` holds the bytes from here on
            while changed:
                at = base + (((changed & -changed).bit_length() - 1) >> 3)
                value, end, vr, node = shape.leaves[bisect.bisect_right(shape.values, at) - 1]
                if vr is not None and value_problem(data[value:end], vr) is not None:
                    return None  # the walk gives the reason
                leaves.append(node)
                changed >>= (end - base) * 8
                base = end
            shape.bits, shape.version = new, shape.version + 1
            if shape is not self._shapes[0]:
                self._keep(shape)
            self.recalled += 1
            return shape.nodes, shape.pixel_offset, Recall(shape, shape.version, tuple(leaves))
        return None

    def _keep(self, shape: _Shape) -> None:
        self._shapes = [shape, *(s for s in self._shapes if s is not shape)][:SHAPES]

    def remember(
        self,
        data: bytes,
        start: int,
        implicit: bool,
        little: bool,
        nodes: list[Node],
        pixel_offset: int,
    ) -> Recall | None:
        """Keep a clean walk of ``data`` (no anomalies) that stopped at Pixel Data; its
        recall (version 0), or None when it cannot be kept."""
        stop = pixel_offset + PIXEL_HEAD
        if stop > len(data):
            return None
        structure = bytearray(b"\xff" * (stop - start))
        leaves: list[tuple[int, int, str | None, Node]] = []
        pending = [nodes]
        while pending:
            for node in pending.pop():
                if node.items is not None:
                    pending.extend(node.items)
                elif node.tag not in PIXEL_TAGS and node.end > node.value:
                    # an undefined-length Pixel Data holds fragment headers: structure
                    rule = _element_rule(node.tag, node.vr, False)
                    vr = rule[1] if rule is not None and rule[1] in TEXT_VRS else None
                    leaves.append((node.value, node.end, vr, node))
                    structure[node.value - start : node.end - start] = bytes(node.end - node.value)
        leaves.sort(key=lambda leaf: leaf[0])
        shape = _Shape(
            start,
            stop,
            implicit,
            little,
            nodes,
            pixel_offset,
            int.from_bytes(data[start:stop], "little"),
            int.from_bytes(structure, "little"),
            [leaf[0] for leaf in leaves],
            leaves,
        )
        self._keep(shape)
        return Recall(shape, 0, ())


class Derived(Generic[T]):
    """One product of a header, ``make(header, key)``, carried from a header to the next
    version of its shape while none of the leaves that ``reads`` changed value and ``key``
    (whatever else the product depends on) is equal; made again otherwise."""

    __slots__ = ("_last", "_make", "_reads", "reused")

    def __init__(self, make: Callable[[Header, object], T], reads: Callable[[Node], bool]) -> None:
        self._make, self._reads = make, reads
        # for each shape (as many as a memo keeps, and a few): the version, key, product
        self._last: dict[object, tuple[int, object, T]] = {}
        self.reused = 0  # products carried, not made (figures, tests)

    def __call__(self, header: Header, key: object = None) -> T:
        recall = header.recall
        if recall is None:
            return self._make(header, key)
        last = self._last.get(recall.shape)
        if (
            last is not None
            and last[0] == recall.version - 1
            and last[1] == key
            and not any(self._reads(node) for node in recall.changed)
        ):
            self._last[recall.shape] = (recall.version, key, last[2])
            self.reused += 1
            return last[2]
        product = self._make(header, key)
        if len(self._last) >= 2 * SHAPES and recall.shape not in self._last:
            self._last.clear()  # shapes the memos no longer keep
        self._last[recall.shape] = (recall.version, key, product)
        return product

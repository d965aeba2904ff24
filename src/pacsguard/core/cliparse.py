"""Typer's coercion of command-line values, without pydantic where a value is plain.

Typer 0.29 coerces every parameter's value, given or default, through a pydantic
``TypeAdapter`` that it builds for the parameter on first use: a ``pacsguard deid`` start paid
for importing pydantic and building about twenty adapters (~40-50 ms, bench/README.md) to turn
``"4"`` into ``4`` and ``"out"`` into ``Path("out")``. Typer offers no public way to give a
parameter its own coercion (``parser=`` is wrapped in an adapter too), so ``plain_coercion``
sets, on each parameter of a kind it knows, the runtime coercion Typer would otherwise build
lazily: ``_TyperParameter._runtime_param``, a private attribute.

The shortcut takes only values whose result is certain — a ``str`` kept as it is; an ``int``
written in ASCII digits, within the parameter's bounds; a ``str`` that is already a normal
path (``os.fspath(Path(text)) == text``) made a ``Path``, then checked by Typer's own path
code; lists of those — and hands every other value (``-3``, ``1_000``, ``abc``, a value out
of bounds, ``out/``, an empty path) to the coercion Typer builds itself, so results and error
messages stay Typer's. Should Typer change these internals, no command breaks: parameters
keep Typer's coercion, and ``tests/test_cli_parse.py`` fails loudly (it also compares the
two coercions value by value).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from typer._click import Command, Context
from typer.core import TyperGroup

try:  # private: typer 0.29's runtime coercion (see the module's docstring)
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
    from typer._param_types import coerce_cli_path
    from typer.core import _TyperParameter
except ImportError:  # pragma: no cover - another Typer: its own coercion stays
    INTERNALS = False
else:
    INTERNALS = True

INT_DIGITS = 18  # a longer digit string goes to Typer's coercion

Shortcut = Callable[[Any, Any, Context], Any]


class _Unsure(Exception):
    """Not a value the shortcut is certain about: Typer's coercion decides."""


def _text(value: Any, param: Any, ctx: Context) -> Any:
    if type(value) is not str:
        raise _Unsure
    return value


def _flag(value: Any, param: Any, ctx: Context) -> Any:
    if type(value) is not bool:
        raise _Unsure
    return value


def _number(low: float | None, high: float | None) -> Shortcut:
    def number(value: Any, param: Any, ctx: Context) -> Any:
        if type(value) is int:
            result = value
        elif (
            type(value) is str
            and 0 < len(value) <= INT_DIGITS
            and value.isascii()
            and value.isdigit()
        ):
            result = int(value)
        else:
            raise _Unsure
        if (low is not None and result < low) or (high is not None and result > high):
            raise _Unsure  # Typer's message names the bounds
        return result

    return number


def _path(info: Any) -> Shortcut:
    def path(value: Any, param: Any, ctx: Context) -> Any:
        if type(value) is str and value and "\x00" not in value:
            made = Path(value)
            if os.fspath(made) != value:  # "out/", "./x": Typer's messages quote it as given
                raise _Unsure
            value = made
        if not isinstance(value, Path):
            raise _Unsure
        return coerce_cli_path(value, info, path_type=Path, param=param, ctx=ctx)

    return path


def _leaf(annotation: Any, descriptor: Any) -> Shortcut | None:
    info = descriptor.parameter_info
    if info.parser is not None or descriptor.is_choice or descriptor.is_file:
        return None
    if annotation is str:
        return _text
    if annotation is bool:
        return _flag
    if annotation is int and not info.clamp:
        return _number(info.min, info.max)
    if annotation is Path and info.path_type is None:
        return _path(info)
    return None


def shortcut_for(descriptor: Any) -> Shortcut | None:
    """The shortcut for a parameter's type descriptor, or None where Typer's coercion stays."""
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        leaf = _leaf(item, descriptor)
        if leaf is None:
            return None

        def many(value: Any, param: Any, ctx: Context) -> Any:
            if not isinstance(value, (list, tuple)):
                raise _Unsure
            return [leaf(one, param, ctx) for one in value]

        return many
    if get_origin(annotation) is not None:
        return None
    return _leaf(annotation, descriptor)


if INTERNALS:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """A parameter's coercion: the shortcut, else the one Typer builds (once)."""

        descriptor: TypeDescriptor
        shortcut: Shortcut
        built: list[RuntimeParam] = field(default_factory=list, compare=False, repr=False)

        def typers(self) -> RuntimeParam:
            """The coercion Typer would have used (built on first need: pydantic)."""
            if not self.built:
                self.built.append(build_runtime_param(self.descriptor))
            return self.built[0]

        def _coerce_value(self, value: Any, param: Any, ctx: Context) -> Any:
            try:
                return self.shortcut(value, param, ctx)
            except _Unsure:
                return self.typers()._coerce_value(value, param=param, ctx=ctx)


def _install(param: Any) -> None:
    if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
        return
    shortcut = shortcut_for(param.type_descriptor)
    if shortcut is not None:
        descriptor = param.type_descriptor
        param._runtime_param = PlainRuntimeParam(
            parameter_info=descriptor.parameter_info,
            annotation=descriptor.annotation,
            descriptor=descriptor,
            shortcut=shortcut,
        )


def plain_coercion(command: Command) -> Command:
    """Give the parameters of ``command`` and of its subcommands the shortcut where it
    applies (in place); returns ``command``. The ``--help`` option, which Click makes at
    the parse, gets it when it is made."""
    if INTERNALS:
        for param in command.params:
            _install(param)
        made = command.get_help_option

        def get_help_option(ctx: Context) -> Any:
            option = made(ctx)
            _install(option)
            return option

        setattr(command, "get_help_option", get_help_option)  # noqa: B010
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            plain_coercion(sub)
    return command

"""One help style for every command, whichever capability module declares it.

Typer's defaults print ``{paths}...`` in usage lines, ``<list[Path]>`` and ``<bool>`` as
types, and cut long defaults with an ellipsis. ``restyle`` walks the built Click tree once and
gives every command the same plain style: usage ``pacsguard deid [OPTIONS] INPUT... OUTPUT``,
metavars in capitals (``--key FILE``, ``--jobs N``), no type shown for flags, text wrapped
(never cut) to the terminal width. Declaring modules only set ``metavar=`` where the derived
name says too little.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from typer._click import Command, Context
from typer.core import TyperArgument, TyperOption
from typer.core import TyperGroup as Group

_NUMBER_TYPES = {int: "N", float: "NUMBER"}


def _annotation(param: Any) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    origin = typing.get_origin(annotation)
    if origin is list:
        (annotation,) = typing.get_args(annotation)
    return annotation


def option_metavar(param: Any) -> str | None:
    """``FILE``/``DIR`` for paths (by the option's help), ``N`` for integers, else TEXT."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.metavar is not None:
        return str(param.metavar)
    annotation = _annotation(param)
    if annotation is Path:
        help_text = (param.help or "").lower()
        return "DIR" if "folder" in help_text or "directory" in help_text else "FILE"
    return _NUMBER_TYPES.get(annotation, "TEXT")


class StyledArgument(TyperArgument):
    """Usage and help name: the metavar (or NAME), ``[NAME]`` when optional, no braces."""

    def _name(self) -> str:
        return str(self.metavar) if self.metavar is not None else str(self.name).upper()

    def _usage_display_name(self) -> str:
        name = self._name()
        if self.nargs != 1 and "..." not in name:
            name += "..."
        return name if self.required else f"[{name}]"

    def _rich_display_name(self) -> str:
        return self._usage_display_name()

    @property
    def display_name_raw(self) -> str:
        return self._usage_display_name()

    def display_type_rich(self, ctx: Context) -> str | None:
        return None


class StyledOption(TyperOption):
    """``--key FILE``; flags show no type."""

    def display_type_rich(self, ctx: Context) -> str | None:
        return option_metavar(self)

    def _get_default_string(self, *, ctx: Context, show_default_is_str: bool, **rest: Any) -> str:
        if show_default_is_str:  # a text written for the reader: shown as written
            return str(self.show_default)
        return str(super()._get_default_string(ctx=ctx, show_default_is_str=False, **rest))


def restyle(command: Command) -> Command:
    """Give ``command`` and every subcommand the one pacsguard help style (in place)."""
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    if not command.short_help and command.help:  # listed whole, not cut at 45 characters
        command.short_help = command.help.strip().split("\n\n")[0].split(". ")[0].rstrip(".")
    command.context_settings.setdefault("max_content_width", 100)
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = StyledArgument
        elif type(param) is TyperOption:
            param.__class__ = StyledOption
    if isinstance(command, Group):
        for sub in command.commands.values():
            restyle(sub)
    return command

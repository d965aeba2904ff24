"""A table's str cells are text: brackets, markup-like words and closing tags kept as they are."""

from __future__ import annotations

import io

from rich.console import Console
from rich.text import Text

from pacsguard.core.texttable import TextTable


def _render(table: TextTable) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(table)
    return out.getvalue()


def test_str_cells_are_never_markup() -> None:
    table = TextTable("name", "subject")
    table.add_row("weight [kg]", "CN=gw,O=[lab] [/x] [bold]b[/bold]")
    table.add_row(Text("styled", style="bold"), None)
    text = _render(table)
    assert "weight [kg]" in text
    assert "CN=gw,O=[lab] [/x] [bold]b[/bold]" in text
    assert "styled" in text

"""Rich tables whose cells are text: a column named ``weight [kg]``, a certificate subject
``O=[lab]`` or a client's AE title is shown as it is. Rich reads a ``str`` cell as markup
(``[kg]`` would be taken for a style and dropped); ``TextTable`` makes every ``str`` cell a
``Text`` first, so no table of the command can fall into it."""

from __future__ import annotations

from rich.console import RenderableType
from rich.style import StyleType
from rich.table import Table
from rich.text import Text


class TextTable(Table):
    """``rich.table.Table``, with ``str`` cells taken as text, never as markup."""

    def add_row(
        self,
        *renderables: RenderableType | None,
        style: StyleType | None = None,
        end_section: bool = False,
    ) -> None:
        cells = (Text(cell) if isinstance(cell, str) else cell for cell in renderables)
        super().add_row(*cells, style=style, end_section=end_section)

"""Renderers turn a Report into output; they never measure. Each exposes ``render(report, out)``.

Every text a renderer prints goes through ``SafeText`` (or ``fa_memtool.text.visible``):
names from the user's code, a report or a baseline never send control characters to
the terminal, and are never read as markup.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from fa_memtool.text import visible

__all__ = ["SafeText"]


class SafeText(Text):
    """A rich Text whose content shows control characters as escapes (``\\x1b``)."""

    def __init__(self, text: str = "", *args: Any, **kwargs: Any) -> None:
        super().__init__(visible(text, newlines=True), *args, **kwargs)

    def append(self, text: Any, style: Any = None) -> "SafeText":
        if isinstance(text, str):
            text = visible(text, newlines=True)
        super().append(text, style)
        return self

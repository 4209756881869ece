"""Text from outside fa-mem, made safe to print.

Names the user's code controls (attribute names, class names, dict keys, module paths,
exception messages) and names read back from a report, a baseline or a plan may hold
control characters: an escape sequence would retitle the terminal, clear it, or rewrite
a line ("\\r\\x1b[2K ok"). Every renderer and every error line passes such text through
``visible``, which shows each control character as a Python escape (``\\x1b``) instead of
sending it.
"""

from __future__ import annotations

import re

__all__ = ["visible"]

# C0 controls (tab and newline included: a name is one line), DEL, C1 controls, and
# the Unicode line and paragraph separators and bidirectional overrides.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_CONTROL_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def visible(text: object, *, newlines: bool = False) -> str:
    """``str(text)`` with every control character shown as an escape, not sent
    (``newlines``: keep line breaks, for text fa-mem lays out on several lines)."""
    value = text if isinstance(text, str) else str(text)
    pattern = _CONTROL_BUT_NEWLINE if newlines else _CONTROL
    return pattern.sub(_escape, value) if pattern.search(value) else value

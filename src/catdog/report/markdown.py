"""Markdown made from user data (class and file names): one escaper for every page catdog
writes (the model card, the audit report), so a name is shown as the text it is, never run as
HTML or read as Markdown."""

from __future__ import annotations

import html
import re

from catdog._rules import has_control_characters


def one_line(text) -> str:
    """``text`` with control characters (line breaks among them) as spaces.

    Examples:
        >>> one_line("a\\nb")
        'a b'
    """
    return "".join(" " if has_control_characters(c) else c for c in str(text))


def escape(value) -> str:
    r"""``value`` as literal Markdown text, safe in a table cell: HTML's ``&``, ``<``, ``>`` as
    entities, Markdown's ``\ ` * _ [ ] | # $`` backslash-escaped, control characters (a newline
    would end a table row) as spaces.

    Examples:
        >>> print(escape("<img src=x onerror=alert(1)>|a_b"))
        &lt;img src=x onerror=alert(1)&gt;\|a\_b
    """
    return re.sub(r"([\\`*_\[\]|#$])", r"\\\1", html.escape(one_line(value), quote=False))


def code(value) -> str:
    """``value`` as a Markdown code span, fenced by more backticks than it holds.

    Examples:
        >>> print(code("a`b"))
        ``a`b``
    """
    text = one_line(value)
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"

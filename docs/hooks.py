"""MkDocs hook: fill ``<!-- catdog-help: COMMAND -->`` markers with that command's ``--help``.

The CLI reference is generated from the parser at build time, so it cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re

MARKER = re.compile(r"<!-- catdog-help: ?([a-z-]*) -->")


def _help(command: str) -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal width; make it fixed
    from catdog.cli import build_parser

    parser = build_parser()
    if not command:
        return parser.format_help()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command].format_help()
    raise ValueError(f"docs: no catdog command named {command!r}")


def on_page_markdown(markdown: str, **kwargs) -> str:
    return MARKER.sub(lambda m: f"```text\n{_help(m.group(1)).rstrip()}\n```", markdown)

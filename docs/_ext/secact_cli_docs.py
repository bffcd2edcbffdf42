"""The ``secact`` argument parser as the CLI page shows it (for sphinx-argparse)."""

from __future__ import annotations

import argparse
import textwrap

from secact.cli import build_parser


def parser() -> argparse.ArgumentParser:
    """``secact.cli.build_parser()`` with each command's epilog as a text block.

    sphinx-argparse reads epilogs as reStructuredText, which would join the lines of their
    examples into one paragraph; a literal block keeps them as ``secact COMMAND --help``
    prints them.
    """
    top = build_parser()
    commands = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for sub in commands.choices.values():
        if sub.epilog:
            sub.epilog = ".. code-block:: text\n\n" + textwrap.indent(sub.epilog.strip(), "    ")
    return top

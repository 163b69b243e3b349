"""Rewrite each ```text block that directly follows (with nothing but blank lines between) a
printing ```python block with what it prints. Text blocks after prose are illustrations
(say, output from an 8-device run) and are left alone.

    python tools/update_doc_outputs.py README.md docs/*.md

tests/test_docs.py fails when such a block is stale; this brings it up to date.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
import sys
import types

FENCE = re.compile(r"^```(python|text)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)


def run_page(text: str, name: str) -> list[tuple[re.Match[str], str | None]]:
    """Each fenced block of a page, with the stdout of the python block directly before it
    (for text blocks) or None. Python blocks run in order in one namespace."""
    # A real module, so that code needing `sys.modules[cls.__module__]` (dataclasses with
    # string annotations, pickling, ...) works as it would in a script.
    module = types.ModuleType(f"docs_{pathlib.Path(name).stem}")
    sys.modules[module.__name__] = module
    namespace = module.__dict__
    blocks = []
    printed = None
    previous_end = 0
    for match in FENCE.finditer(text):
        kind, body = match.group(1), match.group(2)
        if text[previous_end : match.start()].strip():
            printed = None  # prose in between: not this block's output
        previous_end = match.end()
        if kind == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, name, "exec"), namespace)
            printed = out.getvalue() or None
            blocks.append((match, None))
        else:
            blocks.append((match, printed))
            printed = None
    return blocks


def main(paths: list[str]) -> None:
    for name in paths:
        path = pathlib.Path(name)
        text = path.read_text()
        pieces, position = [], 0
        for match, printed in run_page(text, name):
            pieces.append(text[position : match.start()])
            if printed is not None:
                pieces.append("```text\n" + printed.rstrip("\n") + "\n```\n")
            else:
                pieces.append(match.group(0))
            position = match.end()
        pieces.append(text[position:])
        new = "".join(pieces)
        if new != text:
            path.write_text(new)
            print("updated", name)


if __name__ == "__main__":
    main(sys.argv[1:])

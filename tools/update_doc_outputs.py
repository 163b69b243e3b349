"""Rewrite each ```text block that directly follows (with nothing but blank lines between) a
printing ```python block with what it prints. Text blocks after prose are illustrations
(say, output from an 8-device run) and are left alone.

A python block whose last statement carries a comment ending in `raises NAME` shows a mistake:
that statement, and nothing before it, must raise exactly NAME (a class in the page's namespace
or a builtin), and the ```text block right after it shows the exception's message, as a reader
would see it, with no `try`/`except` on the page:

    ```python
    quad(2.0, jnp.ones((7, 4, 3)), jnp.ones((5, 3, 3)))   # raises BroadcastError
    ```

    ```text
    `auto_vmap(quad)`: the batch shapes of the arguments do not broadcast: ...
    ```

    python tools/update_doc_outputs.py README.md docs/*.md

tests/test_docs.py fails when such a block is stale; this brings it up to date.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import io
import pathlib
import re
import sys
import types

FENCE = re.compile(r"^```(python|text)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
RAISES = re.compile(r"#[^\n]*?\braises ([A-Za-z_]\w*)")


def _run_block(body: str, name: str, namespace: dict[str, object]) -> bool:
    """Run one python block; True if it shows a mistake. If its last statement is marked
    `# raises NAME`, run the block up to it, then check that this statement raises NAME and
    print the exception's message."""
    tree = ast.parse(body, name)
    lines = body.splitlines()
    marks = [
        (number, m.group(1)) for number, line in enumerate(lines, 1) for m in RAISES.finditer(line)
    ]
    if not marks:
        exec(compile(body, name, "exec"), namespace)
        return False
    last = tree.body[-1]
    # The last statement's lines, its decorators included (a `def` can raise while decorating).
    first_line = min([last.lineno, *(d.lineno for d in getattr(last, "decorator_list", []))])
    if len(marks) > 1 or not first_line <= marks[0][0] <= (last.end_lineno or last.lineno):
        raise ValueError(f"{name}: `# raises NAME` marks the last statement of a block, once")
    # Everything before the last statement must run cleanly: only the marked statement may raise.
    exec(compile(ast.Module(body=tree.body[:-1], type_ignores=[]), name, "exec"), namespace)
    expected_name = marks[0][1]  # looked up now: the block itself may import it
    expected = namespace.get(expected_name, getattr(builtins, expected_name, None))
    if not (isinstance(expected, type) and issubclass(expected, BaseException)):
        raise ValueError(f"{name}: `# raises {expected_name}`: no such exception class")
    try:
        exec(compile(ast.Module(body=[last], type_ignores=[]), name, "exec"), namespace)
    except expected as e:
        # The exact class: "raises TypeError" promises a plain TypeError, not a subclass.
        if type(e) is not expected:
            raise AssertionError(
                f"{name}, line {first_line}: expected {expected_name}, got {type(e).__name__}"
            ) from e
        print(e)
    else:
        raise AssertionError(f"{name}, line {first_line}: expected {expected_name}, nothing raised")
    return True


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
    raising = None  # the block showing a mistake whose message block is still due
    previous_end = 0
    for match in FENCE.finditer(text):
        kind, body = match.group(1), match.group(2)
        if text[previous_end : match.start()].strip():
            printed = None  # prose in between: not this block's output
        if raising is not None and (printed is None or kind != "text"):
            break
        raising = None
        previous_end = match.end()
        if kind == "python":
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                if _run_block(body, name, namespace):
                    raising = match
            printed = out.getvalue() or None
            blocks.append((match, None))
        else:
            blocks.append((match, printed))
            printed = None
    if raising is not None:
        line = text.count("\n", 0, raising.start()) + 1
        raise ValueError(
            f"{name}, line {line}: a `# raises` block must be followed directly by a ```text "
            "block, which shows the message"
        )
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
    # The outputs are those of this checkout's package, not of an `autovmap` installed elsewhere
    # (an editable install of another worktree, say).
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
    main(sys.argv[1:])

"""Every Python code block in README.md and docs/*.md runs, page by page, in order, and every
```text block right after a printing block shows exactly what it prints.

Stale outputs are fixed with `python tools/update_doc_outputs.py README.md docs/*.md`."""

import pathlib
import re
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from update_doc_outputs import FENCE, RAISES, run_page  # noqa: E402

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


# The pages document the newest versions: their outputs show jaxprs, reprs and jaxtyping's
# messages, whose text changes between releases, so this runs in the newest-versions jobs only.
@pytest.mark.newest
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run_and_outputs_match(page):
    for match, printed in run_page(page.read_text(), page.name):
        if printed is not None:
            assert match.group(2).rstrip("\n") == printed.rstrip("\n"), (
                f"{page.name}: a ```text block no longer matches what the code above prints; "
                "run `python tools/update_doc_outputs.py` on the page"
            )


def _python_blocks(page):
    text = page.read_text()
    for match in FENCE.finditer(text):
        if match.group(1) == "python":
            yield text.count("\n", 0, match.start()) + 1, match


# docs/typing.md is another helper's page, in rewriting while this test was added.
STANDALONE_PAGES = [page for page in PAGES if page.name != "typing.md"]
BLOCKS = [(page, line, match) for page in STANDALONE_PAGES for line, match in _python_blocks(page)]


# A reader copies one block: it must run on its own (its imports and definitions included),
# as well as in sequence with the blocks above it (the test above).
@pytest.mark.newest
@pytest.mark.parametrize(
    "page, line, match", BLOCKS, ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in BLOCKS]
)
def test_each_code_block_runs_on_its_own(page, line, match):
    alone = match.group(0)
    if RAISES.search(match.group(2)):
        alone += "```text\n(the message)\n```\n"  # the raise is checked, its text is not
    run_page(alone, f"{page.name}_line_{line}")


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```bash\n(.*?)\n```", text, re.DOTALL | re.MULTILINE)[:2]
    assert "python -m autovmap" in commands[0]
    assert "'.[test]'" in commands[1] and "pytest" in commands[1]
    # CI's first job runs the README's test command itself, so the README's promise is tested.
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].startswith("python3 -m venv .venv && ") and commands[1] in ci


@pytest.mark.parametrize("name", ["auto_vmap", "plan", "vectorize"])
def test_docstring_examples_run(name):
    import autovmap

    for block in re.findall(r"```python\n(.*?)```", getattr(autovmap, name).__doc__, re.DOTALL):
        exec(compile(textwrap.dedent(block), f"{name}.__doc__", "exec"), {})


def _page(*blocks: str) -> str:
    return "\n".join(f"```{kind}\n{body}```\n" for kind, body in blocks)


def test_a_raises_block_shows_the_message_of_exactly_that_exception():
    page = _page(
        ("python", "def f(x):\n    raise KeyError(x)\n\nf('k')  # raises KeyError\n"),
        ("text", "'k'\n"),
    )
    [(_, python_printed), (_, shown)] = run_page(page, "raises_ok.md")
    assert python_printed is None and shown == "'k'\n"


@pytest.mark.parametrize(
    "body, error",
    [
        ("x = 1  # raises KeyError\n", "expected KeyError, nothing raised"),
        ("{}['k']  # raises LookupError\n", "expected LookupError, got KeyError"),  # a subclass
        ("{}['k']\nx = 1  # raises KeyError\n", "'k'"),  # an earlier statement may not raise
        ("{}['k']  # raises NoSuchError\n", "no such exception class"),
        ("x = 1  # raises KeyError\ny = 2  # raises KeyError\n", "marks the last statement"),
    ],
)
def test_a_raises_block_fails_unless_its_last_statement_raises_exactly(body, error):
    with pytest.raises((AssertionError, KeyError, ValueError), match=error):
        run_page(_page(("python", body), ("text", "'k'\n")), "raises_bad.md")


def test_a_raises_block_needs_its_message_block_right_after():
    raising = ("python", "{}['k']  # raises KeyError\n")
    for page in (
        _page(raising),
        _page(raising, ("python", "x = 1\n")),
        _page(raising) + "\nprose\n\n" + _page(("text", "'k'\n")),
    ):
        with pytest.raises(ValueError, match="must be followed directly by a ```text block"):
            run_page(page, "raises_alone.md")


def test_error_examples_show_the_call_not_try_except_scaffolding():
    for page in PAGES:
        text = page.read_text()
        assert "raise AssertionError(" not in text, f"{page.name}: use a `# raises NAME` block"


def test_readme_first_screen_is_what_it_is_commands_example_why_and_where_the_docs_are():
    text = (ROOT / "README.md").read_text()
    first_screen = text.split("\n## ")[0]
    intro = first_screen.split("```bash")[0]
    # One opening sentence, said once.
    assert intro.count("`auto_vmap` makes") == 1 and text.count("written for one example") == 1
    order = [
        first_screen.index("```bash"),
        first_screen.index("```python"),
        first_screen.index("**`jax.vmap`**"),
        first_screen.index("**`jnp.vectorize`**"),
        first_screen.index("(docs/index.md)"),
    ]
    assert order == sorted(order)

"""Every Python code block in README.md and docs/*.md runs, page by page, in order."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_run(page):
    blocks = BLOCK.findall(page.read_text())
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as e:  # say which block failed, keep the original traceback
            raise AssertionError(f"{page.name}, code block {i} failed:\n{block}") from e


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```bash\n(.*?)\n```", text, re.DOTALL | re.MULTILINE)[:2]
    assert "python -m autovmap" in commands[0]
    assert "'.[test]'" in commands[1] and "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert ".venv/bin/python -m pytest" in commands[1] and ".venv/bin/python -m pytest" in ci

"""The typed surface: the stub, the clients in tests/typing, stubtest, verifytypes, the plugin.

The checkers are slow to start (mypy reads all of jax's types), so every checker run starts at
once, in parallel, when the first test here needs one; each test then reads its run's output.
"""

import json
import os
import pathlib
import re
import runpy
import shutil
import subprocess
import sys
import tokenize
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
CLIENT_OK = TYPING / "client_ok.py"
CLIENT_ERRORS = TYPING / "client_errors.py"
CLIENT_PLUGIN = TYPING / "client_plugin.py"
BIN = pathlib.Path(sys.executable).parent
PYRIGHT = shutil.which("pyright", path=str(BIN)) or shutil.which("pyright")
MYPY = [sys.executable, "-m", "mypy", "--no-error-summary"]
# Each mypy run has its own cache: runs with other options or plugins invalidate each other's.
COMMANDS: dict[str, tuple[list[str], pathlib.Path]] = {
    "mypy": (
        [*MYPY, "--config-file", "pyproject.toml", "--cache-dir", ".mypy_cache",
         "autovmap", str(CLIENT_OK), str(CLIENT_ERRORS)],
        ROOT,
    ),
    "mypy with the plugin": (
        [*MYPY, "--config-file", str(TYPING / "mypy.ini"), "--cache-dir", ".mypy_cache/plugin",
         str(CLIENT_PLUGIN), str(CLIENT_OK)],
        ROOT,
    ),
    # Run in stubs/, mypy finds the checked copy of the stub and no implementation modules to
    # compare with themselves; -P keeps Python from importing stubs/autovmap as a namespace
    # package, so it imports the real one (through PYTHONPATH, below).
    "stubtest": (
        [sys.executable, "-P", "-m", "mypy.stubtest", "autovmap",
         "--allowlist", str(TYPING / "stubtest_allowlist.txt")],
        ROOT / "stubs",
    ),
    "pyright": (
        [str(PYRIGHT), "--outputjson", "--pythonpath", sys.executable,
         "autovmap", str(CLIENT_OK), str(CLIENT_ERRORS)],
        ROOT,
    ),
    "verifytypes": (
        [str(PYRIGHT), "--outputjson", "--verifytypes", "autovmap", "--ignoreexternal"],
        ROOT,
    ),
}
ENV = {
    **os.environ,
    # --verifytypes ignores --pythonpath and runs the first `python` on PATH, whose sys.path
    # must hold jax and this package: an editable install's import hook hides it from pyright.
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    "PYTHONPATH": str(ROOT),
    "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1",  # no look-up of the newest pyright on PyPI
}
MYPY_ERROR = re.compile(r"^(?P<path>.+?):(?P<line>\d+): error: ", re.MULTILINE)
MARKER = re.compile(r"#\s*E:")
# What the checkers report depends on the type stubs of the installed jax and jaxtyping, and the
# mypy/pyright pins of the test extra: those tests run on the newest versions, not at the floors.
NEWEST = pytest.mark.newest


def _run(command: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    if PYRIGHT is None:
        pytest.fail("pyright is not installed: `pip install -e '.[test]'`")
    with ThreadPoolExecutor(len(COMMANDS)) as pool:
        yield {name: pool.submit(_run, *command) for name, command in COMMANDS.items()}


def _output(run: subprocess.CompletedProcess[str]) -> str:
    return f"$ {' '.join(run.args)}\n{run.stdout}{run.stderr}"


def _mypy_errors(run: subprocess.CompletedProcess[str]) -> dict[pathlib.Path, set[int]]:
    errors: dict[pathlib.Path, set[int]] = {}
    for match in MYPY_ERROR.finditer(run.stdout):
        path = (ROOT / match["path"]).resolve()  # mypy names files relative to its cwd
        errors.setdefault(path, set()).add(int(match["line"]))
    return errors


def _pyright_errors(run: subprocess.CompletedProcess[str]) -> dict[pathlib.Path, set[int]]:
    errors: dict[pathlib.Path, set[int]] = {}
    for diagnostic in json.loads(run.stdout)["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            line = diagnostic["range"]["start"]["line"] + 1  # pyright counts from 0
            errors.setdefault(pathlib.Path(diagnostic["file"]), set()).add(line)
    return errors


def _marked_lines(path: pathlib.Path) -> set[int]:
    """The lines whose comment starts with `E:`: those a checker must report."""
    with path.open("rb") as file:
        return {
            token.start[0]
            for token in tokenize.tokenize(file.readline)
            if token.type == tokenize.COMMENT and MARKER.match(token.string)
        }


def _errors(runs: dict[str, Future[subprocess.CompletedProcess[str]]], checker: str):
    """The lines with errors, by file, and the whole output to show when a test fails."""
    run = runs[checker].result()
    output = _output(run)
    assert run.returncode in (0, 1), output  # 1: errors found; anything else: it failed to run
    parse = _pyright_errors if checker == "pyright" else _mypy_errors
    return parse(run), output


@NEWEST
@pytest.mark.parametrize("checker", ["mypy", "mypy with the plugin", "pyright"])
def test_typed_uses_check_clean(runs, checker):
    errors, output = _errors(runs, checker)
    assert CLIENT_OK not in errors, output


@NEWEST
@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_misuses_are_reported_on_exactly_the_marked_lines(runs, checker):
    errors, output = _errors(runs, checker)
    assert errors.get(CLIENT_ERRORS, set()) == _marked_lines(CLIENT_ERRORS), output


@NEWEST
def test_plugin_reports_exactly_the_marked_lines(runs):
    errors, output = _errors(runs, "mypy with the plugin")
    assert errors.get(CLIENT_PLUGIN, set()) == _marked_lines(CLIENT_PLUGIN), output


@NEWEST
@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_implementation_type_checks(runs, checker):
    """mypy --strict on the stub and every module; pyright strict on the stub and the plugin,
    and in its standard mode on the rest (see [tool.mypy] and [tool.pyright] in pyproject.toml)."""
    errors, output = _errors(runs, checker)
    implementation = {path for path in errors if path.is_relative_to(ROOT / "autovmap")}
    assert not implementation, output


@NEWEST
def test_stub_matches_the_runtime(runs):
    run = runs["stubtest"].result()
    assert run.returncode == 0, _output(run)


@NEWEST
def test_public_types_are_complete(runs):
    run = runs["verifytypes"].result()
    assert run.returncode in (0, 1), _output(run)
    report = json.loads(run.stdout)["typeCompleteness"]
    assert pathlib.Path(report["packageRootDirectory"]) == ROOT / "autovmap", _output(run)
    assert report["completenessScore"] == 1, _output(run)


def test_stub_copy_is_identical():
    stub = (ROOT / "autovmap" / "__init__.pyi").read_text()
    assert (ROOT / "stubs" / "autovmap" / "__init__.pyi").read_text() == stub, (
        "stubs/autovmap/__init__.pyi differs: copy autovmap/__init__.pyi over it"
    )


def test_typed_uses_run():
    """The types client_ok.py pins are those its calls really have at run time."""
    runpy.run_path(str(CLIENT_OK), run_name="client_ok")


def test_plugin_does_not_import_jax():
    # Load the plugin's file alone: importing it as `autovmap.mypy_plugin` imports the package.
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('plugin', sys.argv[1])\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if m.startswith('jax'))\n"
    )
    plugin = ROOT / "autovmap" / "mypy_plugin.py"
    subprocess.run([sys.executable, "-c", code, str(plugin)], check=True, env=ENV, timeout=120)

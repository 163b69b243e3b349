"""The typed surface: the stub, the clients in tests/typing, stubtest, verifytypes, the plugin,
and the return-type table of docs/typing.md.

The checkers are slow to start (mypy reads all of jax's types), so every checker run starts at
once, in parallel, when the first test here needs one; each test then reads its run's output.
"""

import ast
import importlib
import importlib.metadata
import inspect
import json
import os
import pathlib
import re
import runpy
import shutil
import subprocess
import sys
import tokenize
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TYPING = ROOT / "tests" / "typing"
CLIENT_OK = TYPING / "client_ok.py"
CLIENT_ERRORS = TYPING / "client_errors.py"
CLIENT_PLUGIN = TYPING / "client_plugin.py"
CLIENT_RETURNS = TYPING / "client_returns.py"
CLIENT_BATCHED = TYPING / "client_batched.py"
TYPING_DOCS = ROOT / "docs" / "typing.md"
BIN = pathlib.Path(sys.executable).parent
PYRIGHT = shutil.which("pyright", path=str(BIN)) or shutil.which("pyright")
MYPY = [sys.executable, "-m", "mypy", "--no-error-summary"]
CLIENTS = [str(CLIENT_OK), str(CLIENT_ERRORS), str(CLIENT_RETURNS), str(CLIENT_BATCHED)]
PLUGIN_CLIENTS = [str(CLIENT_PLUGIN), *CLIENTS]
# Each mypy run has its own cache: runs with other options or plugins invalidate each other's.
COMMANDS: dict[str, tuple[list[str], pathlib.Path]] = {
    "mypy": (
        [*MYPY, "--config-file", "pyproject.toml", "--cache-dir", ".mypy_cache", "autovmap"]
        + CLIENTS,
        ROOT,
    ),
    "mypy with the plugin": (
        [*MYPY, "--config-file", str(TYPING / "mypy.ini"), "--cache-dir", ".mypy_cache/plugin"]
        + PLUGIN_CLIENTS,
        ROOT,
    ),
    # The package as users have it: the stub against the runtime, and every other module
    # (private ones included) against itself, all imported (so `autovmap.__main__` must not run
    # anything when imported). Nothing is allow-listed. The copy in stubs/ is this stub
    # (test_stub_copy_is_identical), which imports nothing of the package.
    "stubtest": (
        [sys.executable, "-m", "mypy.stubtest", "autovmap"],
        ROOT,
    ),
    "pyright": (
        [str(PYRIGHT), "--outputjson", "--pythonpath", sys.executable, "autovmap"] + CLIENTS,
        ROOT,
    ),
    # The clients as pyright's default (basic) mode checks them, which reports less than strict.
    "pyright basic": (
        [str(PYRIGHT), "--outputjson", "--pythonpath", sys.executable]
        + ["--project", str(TYPING / "pyrightconfig.basic.json")],
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
MYPY_REVEAL = re.compile(
    r'^(?P<path>.+?):(?P<line>\d+): note: Revealed type is "(?P<type>.*)"$', re.MULTILINE
)
# `# E: why` marks a line that every checker of the file must report; `# E[pyright, plugin]:
# why` a line that only those must report (`mypy` is mypy without the plugin, `plugin` with it,
# `pyright` pyright strict, `basic` pyright in its basic mode).
MARKER = re.compile(r"#\s*E(?:\[(?P<only>[\w, ]+)\])?:")
SHORT_NAMES = {
    "mypy": "mypy",
    "mypy with the plugin": "plugin",
    "pyright": "pyright",
    "pyright basic": "basic",
}
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


def _marked_lines(path: pathlib.Path, checker: str) -> set[int]:
    """The lines whose comment starts with `E:`, or `E[...]:` naming `checker`: those it must
    report."""
    with path.open("rb") as file:
        markers = [
            (token.start[0], match["only"])
            for token in tokenize.tokenize(file.readline)
            if token.type == tokenize.COMMENT and (match := MARKER.match(token.string))
        ]
    name = SHORT_NAMES[checker]
    return {
        line
        for line, only in markers
        if only is None or name in {listed.strip() for listed in only.split(",")}
    }


def _errors(runs: dict[str, Future[subprocess.CompletedProcess[str]]], checker: str):
    """The lines with errors, by file, and the whole output to show when a test fails."""
    run = runs[checker].result()
    output = _output(run)
    assert run.returncode in (0, 1), output  # 1: errors found; anything else: it failed to run
    parse = _pyright_errors if checker.startswith("pyright") else _mypy_errors
    return parse(run), output


CHECKERS = ["mypy", "mypy with the plugin", "pyright", "pyright basic"]


@NEWEST
@pytest.mark.parametrize("checker", CHECKERS)
def test_typed_uses_check_clean(runs, checker):
    errors, output = _errors(runs, checker)
    assert CLIENT_OK not in errors, output
    assert CLIENT_RETURNS not in errors, output
    assert CLIENT_BATCHED not in errors, output


@NEWEST
@pytest.mark.parametrize("checker", CHECKERS)
def test_misuses_are_reported_on_exactly_the_marked_lines(runs, checker):
    errors, output = _errors(runs, checker)
    assert errors.get(CLIENT_ERRORS, set()) == _marked_lines(CLIENT_ERRORS, checker), output


@NEWEST
def test_plugin_reports_exactly_the_marked_lines(runs):
    errors, output = _errors(runs, "mypy with the plugin")
    assert errors.get(CLIENT_PLUGIN, set()) == _marked_lines(
        CLIENT_PLUGIN, "mypy with the plugin"
    ), output


def _reveals(run: subprocess.CompletedProcess[str], checker: str) -> dict[int, str]:
    """What each `reveal_type` line of client_returns.py shows, by line."""
    if not checker.startswith("pyright"):
        return {
            int(match["line"]): match["type"]
            for match in MYPY_REVEAL.finditer(run.stdout)
            if (ROOT / match["path"]).resolve() == CLIENT_RETURNS
        }
    return {
        diagnostic["range"]["start"]["line"] + 1: diagnostic["message"].rpartition(' is "')[2][:-1]
        for diagnostic in json.loads(run.stdout)["generalDiagnostics"]
        if diagnostic["severity"] == "information"
        and pathlib.Path(diagnostic["file"]) == CLIENT_RETURNS
    }


def _return_type(revealed: str) -> str:
    """The return type in a revealed type, spelled alike for both checkers: `def (x:
    jax._src.basearray.Array) -> jax._src.basearray.Array | float` (mypy) and `(x: Array) ->
    (Array | float)` (pyright) both give `Array | float`."""
    text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_])", "", revealed)  # module paths
    text = re.sub(r"@\w+", "", text)  # pyright's scope of a type variable, `T@f`
    # mypy spells a NamedTuple `tuple[Array, Array, fallback=Pair]`.
    while (fallback := re.search(r", fallback=(\w+)\]", text)) is not None:
        depth, start = 0, fallback.start()
        while depth or text[start] != "[":
            depth += {"]": 1, "[": -1}.get(text[start], 0)
            start -= 1
        text = text[: start - len("tuple")] + fallback[1] + text[fallback.end() :]
    depth = 0
    for i, char in enumerate(text):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if depth == 0 and text.startswith(" -> ", i):
            returned = text[i + len(" -> ") :]
            return returned[1:-1] if returned.startswith("(") else returned
    return "None" if text.startswith("def ") else text  # mypy leaves out `-> None`


def _return_types(revealed: str) -> str:
    """The return type in a revealed type, or those of its overloads, joined with `; `: mypy's
    `Overload(def (x: Array) -> Array, def (x: Array, n: int) -> int)` and pyright's
    `Overload[(x: Array) -> Array, (x: Array, n: int) -> int]` both give `Array; int`."""
    if not revealed.startswith(("Overload(", "Overload[")):
        return _return_type(revealed)
    items, depth, start = [], 0, len("Overload(")
    for i, char in enumerate(revealed[start:-1], start):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if (
            depth == 0
            and revealed.startswith(", ", i)
            and revealed[i + 2 :].startswith(("def ", "("))
        ):
            items.append(revealed[start:i])
            start = i + 2
    items.append(revealed[start:-1])
    return "; ".join(map(_return_type, items))


def _cells(row: str) -> list[str]:
    """The cells of a Markdown table row; a `|` in a code span is not a separator."""
    return [cell.strip() for cell in re.split(r"\|(?=(?:[^`]*`[^`]*`)*[^`]*$)", row)[1:-1]]


def _return_type_table() -> dict[str, tuple[dict[str, str], ...]]:
    """The table of docs/typing.md: for each declared return type, what `auto_vmap(f)`,
    `vectorize(f)` and `jax.vmap(f)` return, for every checker (`"*"`) and for pyright where it
    differs."""
    text = TYPING_DOCS.read_text()
    rows = text[text.index("<!-- return-type table") :].split("\n\n")[1].splitlines()[2:]
    table = {}
    for row in rows:
        declared, *columns = _cells(row)
        table[_spelling(re.findall(r"`([^`]+)`", declared)[0])] = tuple(
            {"*": re.findall(r"`([^`]+)`", cell)[0]}
            | dict(re.findall(r"(pyright|plugin): `([^`]+)`", cell))
            for cell in columns
        )
    return table


def _spelling(annotation: str) -> str:
    return annotation.replace('"', "'")  # `ast.unparse` quotes with '


def _client_rows() -> dict[int, tuple[str, int]]:
    """Each `reveal_type` line of client_returns.py: the declared return type of its function
    and the table column it is compared with (1: `auto_vmap`, 2: `vectorize`, 3: `jax.vmap`)."""
    module = ast.parse(CLIENT_RETURNS.read_text())
    returns = {
        node.name: ast.unparse(node.returns)
        for node in module.body
        if isinstance(node, ast.FunctionDef) and node.returns is not None
    }
    overloads: dict[str, list[str]] = {}  # an overloaded function: its overloads' return types
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.returns is not None:
            if any(ast.unparse(decorator) == "overload" for decorator in node.decorator_list):
                overloads.setdefault(node.name, []).append(ast.unparse(node.returns))
    returns |= {name: "; ".join(types) for name, types in overloads.items()}
    assigned = {  # `refused = auto_vmap(f)`, then `reveal_type(refused)`
        node.targets[0].id: node.value
        for node in module.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
    }
    rows = {}
    for node in module.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            if ast.unparse(node.value.func) == "reveal_type":
                (argument,) = node.value.args
                if isinstance(argument, ast.Name) and argument.id in assigned:
                    argument = assigned[argument.id]
                (function,) = {
                    name.id for name in ast.walk(argument) if isinstance(name, ast.Name)
                } & returns.keys()
                called = ast.unparse(argument)
                column = 3 if called.startswith("jax.vmap(") else 2 if "vectorize(" in called else 1
                rows[node.lineno] = (_spelling(returns[function]), column)
    return rows


@NEWEST
@pytest.mark.parametrize("checker", CHECKERS)
def test_return_type_table_is_what_the_checkers_report(runs, checker):
    run = runs[checker].result()
    table, rows, reveals = _return_type_table(), _client_rows(), _reveals(run, checker)
    assert {declared for declared, _ in rows.values()} == set(table), (
        "client_returns.py and the table of docs/typing.md must have the same rows"
    )
    assert set(reveals) == set(rows), _output(run)
    differences = []
    for line, (declared, column) in sorted(rows.items()):
        expected = table[declared][column - 1]
        # pyright's basic mode reveals the types its strict mode does.
        name = {"basic": "pyright"}.get(SHORT_NAMES[checker], SHORT_NAMES[checker])
        expected = expected.get(name, expected["*"])
        if (reported := _return_types(reveals[line])) != expected:
            differences.append(
                f"client_returns.py:{line}: for `{declared}`, the table has `{expected}` "
                f"in column {column + 1}, {checker} reports `{reported}` ({reveals[line]})"
            )
    assert not differences, "\n".join(differences)


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


def test_importing_main_runs_nothing():
    importlib.import_module("autovmap.__main__")  # `python -m autovmap` would exit


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
    # The copy stands alone in stubs/: the stub imports no module of the package.
    imported = [
        node.module or "."
        for node in ast.walk(ast.parse(stub))
        if isinstance(node, ast.ImportFrom) and (node.level or "autovmap" in (node.module or ""))
    ]
    assert not imported, imported


def test_typed_uses_run():
    """The types client_ok.py pins are those its calls really have at run time."""
    runpy.run_path(str(CLIENT_OK), run_name="client_ok")
    runpy.run_path(str(CLIENT_BATCHED), run_name="client_batched")


def test_all_lists_every_public_name():
    """`__all__` (which the stub needs to export `Batched`) is every public name, in both."""
    import autovmap

    public = {
        name
        for name, value in vars(autovmap).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert sorted(autovmap.__all__) == sorted(public)
    stub = ast.parse((ROOT / "autovmap" / "__init__.pyi").read_text())
    [listed] = [
        node.value
        for node in stub.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "__all__"
    ]
    assert ast.literal_eval(listed) == autovmap.__all__


def test_plugin_does_not_import_jax():
    # Load the plugin's modules alone: importing `autovmap.mypy_plugin` runs the package's
    # `__init__`, which imports jax. A bare `autovmap` module stands in for the package.
    code = (
        "import importlib, sys, types\n"
        "package = types.ModuleType('autovmap')\n"
        "package.__path__ = [sys.argv[1]]\n"
        "sys.modules['autovmap'] = package\n"
        "importlib.import_module('autovmap.mypy_plugin')\n"
        "assert 'jax' not in sys.modules, sorted(m for m in sys.modules if m.startswith('jax'))\n"
    )
    package = ROOT / "autovmap"
    subprocess.run([sys.executable, "-c", code, str(package)], check=True, env=ENV, timeout=120)


EDITABLE_CLIENT = """\
from jax import Array

from autovmap import auto_vmap


@auto_vmap(v=1)
def double(v: Array) -> Array:
    return 2 * v


label: str = double(v=double)  # reported: not an `Array`, not a `str`
"""


def _editable_install_of_this_clone() -> bool:
    """Whether the running environment has this clone installed with `pip install -e`."""
    # The installed dist-info says how it was installed; the clone's own `autovmap.egg-info`
    # (written by the editable build) may be found first, and says nothing of it.
    urls = [
        d.read_text("direct_url.json") for d in importlib.metadata.distributions(name="autovmap")
    ]
    direct_url = next((url for url in urls if url is not None), None)
    if direct_url is None:
        return False
    info = json.loads(direct_url)
    url = info.get("url", "")
    return (
        info.get("dir_info", {}).get("editable", False)
        and url.startswith("file://")
        and (pathlib.Path(urllib.parse.unquote(url.removeprefix("file://"))).resolve() == ROOT)
    )


@NEWEST
@pytest.mark.skipif(
    not _editable_install_of_this_clone(),
    reason="autovmap is not installed from this clone with `pip install -e '.[test]'`",
)
@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_editable_install_is_visible_to_checkers_run_elsewhere(tmp_path, checker):
    """The README's `pip install -e '.[test]'`, then a checker run from another folder, with
    no `PYTHONPATH`: it must find the package and its stub (an import hook would hide them)."""
    (tmp_path / "client.py").write_text(EDITABLE_CLIENT)
    env = {name: value for name, value in ENV.items() if name != "PYTHONPATH"}
    if checker == "mypy":
        cache = ROOT / ".mypy_cache" / "editable"
        command = [*MYPY, "--strict", "--cache-dir", str(cache), "client.py"]
    else:
        command = [str(PYRIGHT), "--outputjson", "--pythonpath", sys.executable, "client.py"]
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    # Found and typed: the errors are those of the last line only, which only the stub can tell
    # (the argument is not an `Array`, the result not a `str`), none on the import.
    assert run.returncode == 1, _output(run)
    if checker == "mypy":
        lines = {int(match["line"]) for match in MYPY_ERROR.finditer(run.stdout)}
    else:
        lines = {
            diagnostic["range"]["start"]["line"] + 1
            for diagnostic in json.loads(run.stdout)["generalDiagnostics"]
            if diagnostic["severity"] == "error"
        }
    assert lines == {len(EDITABLE_CLIENT.splitlines())}, _output(run)

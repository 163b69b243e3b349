"""`python -m autovmap` (the demo) and `python -m autovmap inspect MODULE[:FUNCTION]`."""

import importlib.metadata
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from autovmap._cli import main

PROG_ERROR = "python -m autovmap inspect: error: "
# A subprocess run elsewhere than the checkout still imports this checkout's package.
ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECKOUT_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

MODULE = textwrap.dedent("""
    from jaxtyping import Array, Float
    from autovmap import auto_vmap

    @auto_vmap(s=0, chunk_size=64)
    def quad(s: float, v: Float[Array, "n"], m: Float[Array, "n n"]) -> Float[Array, ""]:
        return v @ m @ v + s

    class Model:
        @auto_vmap(None, 2)
        def apply(self, x: Float[Array, "n"]):
            return x

        @staticmethod
        @auto_vmap(check=False)
        def static(x: Float[Array, "n"]):
            return x
""")


def run(argv, capsys):
    code = main(argv)
    return code, capsys.readouterr().out


def test_inspect_reports_every_function_with_ranks_sources_and_notes(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_target.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out = run(["inspect", "cli_target"], capsys)
    assert code == 0
    blocks = out.split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == [
        "quad (checks on, chunk_size=64)",
        "Model.apply (checks on)",
        "Model.static (checks off)",  # `check=False`: the user turned them off
    ]
    quad_rows = [line.split()[:4] for line in blocks[0].splitlines()[2:]]
    assert quad_rows[0] == ["s", "float", "0", "explicit"] and "Float[ArrayLike" in blocks[0]
    assert blocks[0].splitlines()[4].split() == [
        "m",
        "Float[Array,",
        "'n",
        "n']",
        "2",
        "annotation",
    ]
    assert "explicit rank 2 differs from the annotation's 1" in blocks[1]
    code, out = run(["inspect", "cli_target:Model.apply"], capsys)
    assert code == 0 and out.startswith("Model.apply") and "quad" not in out


def test_inspect_shows_signatures_and_dim_strings(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_named.py").write_text(
        textwrap.dedent("""
            from autovmap import auto_vmap

            @auto_vmap(signature="(n),(n)->()")
            def dot(a, b):
                return a @ b

            @auto_vmap(a="n", b=None)
            def first(a, b):
                return a
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out = run(["inspect", "cli_named"], capsys)
    assert code == 0
    dot, first = out.split("\n\n")
    assert dot.splitlines()[0] == "dot (no annotations to check, signature='(n),(n)->()')"
    assert dot.splitlines()[2].split() == ["a", "-", "1", "signature"]
    assert first.splitlines()[2].split() == ["a", "-", "'n'", "explicit"]


def test_inspect_reports_spec_problems_and_missing_functions(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_broken.py").write_text(
        "from autovmap import auto_vmap\n\n@auto_vmap(y=1)\ndef f(x):\n    return x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out = run(["inspect", "cli_broken"], capsys)
    assert code == 1 and "spec problem" in out and "`y`" in out and "`x`" in out
    (tmp_path / "cli_empty.py").write_text("x = 1\n")
    assert run(["inspect", "cli_empty"], capsys) == (
        1,
        "cli_empty: no auto-vmapped function found.\n",
    )


def test_python_dash_m_runs_the_demo():
    out = subprocess.run(
        [sys.executable, "-m", "autovmap"], capture_output=True, text=True, check=True
    ).stdout
    assert "[15. 15. 15. 15. 15.]" in out and "(7, 5)" in out and "do not broadcast" in out


def misuse(argv, capsys, status=2):
    """Run a misuse: the exit status, nothing on stdout, and the one line on stderr."""
    code = main(argv)
    captured = capsys.readouterr()
    assert code == status and captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(PROG_ERROR), captured.err
    return lines[0][len(PROG_ERROR) :]


def test_missing_module_is_one_line_and_status_2(capsys):
    assert misuse(["inspect", "autovmap_no_such_module"], capsys) == (
        "no module named 'autovmap_no_such_module' on sys.path (MODULE is a module name, or the "
        "path of a .py file)"
    )
    # A missing submodule of a package that exists is the same misuse.
    assert misuse(["inspect", "autovmap.no_such_submodule:f"], capsys).startswith(
        "no module named 'autovmap.no_such_submodule'"
    )


@pytest.mark.parametrize("spelling", ["{name}.py", "./{name}.py", "{dir}/{name}.py:quad"])
def test_file_paths_are_imported_from_the_file(tmp_path, monkeypatch, capsys, spelling):
    # Not on sys.path: only the path can find it. Its folder goes first on sys.path, so its
    # own `import cli_helper` of a neighbouring file works, as under `python FILE`.
    name = "cli_file_target_" + str(abs(hash(spelling)))
    (tmp_path / f"{name}.py").write_text("from cli_helper import EXTRA\n" + MODULE)
    (tmp_path / "cli_helper.py").write_text("EXTRA = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    code, out = run(["inspect", spelling.format(name=name, dir=tmp_path)], capsys)
    assert code == 0 and out.startswith("quad (checks on, chunk_size=64)")
    assert ("Model.apply" in out) == (":quad" not in spelling)


def test_missing_or_non_python_file_is_one_line_and_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert misuse(["inspect", "./nope.py"], capsys) == f"no file './nope.py' (from {tmp_path})"
    (tmp_path / "notes.txt").write_text("not python\n")
    assert misuse(["inspect", "notes.txt"], capsys) == (
        "'notes.txt' is not a Python file: give a `.py` file or a module name"
    )


def test_unknown_function_is_one_line_and_status_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_unknown.py").write_text(MODULE + "\ndef helper(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert misuse(["inspect", "cli_unknown:qaud"], capsys) == (
        "cli_unknown has no function `qaud`; its auto-vmapped functions: quad, Model.apply, "
        "Model.static"
    )
    assert misuse(["inspect", "cli_unknown:helper"], capsys) == (
        "`cli_unknown:helper` is not auto-vmapped; its auto-vmapped functions: quad, Model.apply, "
        "Model.static"
    )


def test_module_raising_on_import_is_one_line_and_status_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_raises.py").write_text("x = 1\nraise RuntimeError('no GPU here')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert misuse(["inspect", "cli_raises"], capsys, status=1) == (
        f"importing cli_raises raised RuntimeError: no GPU here ({tmp_path / 'cli_raises.py'}:2)"
    )


def test_misuse_in_a_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "autovmap", "inspect", "mymodel_not_here"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=CHECKOUT_ENV,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        PROG_ERROR + "no module named 'mymodel_not_here' on sys.path (MODULE is a module name, "
        "or the path of a .py file)"
    ]


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"autovmap {importlib.metadata.version('autovmap')} (jax ")
    assert f"jax {importlib.metadata.version('jax')}," in out and len(out.splitlines()) == 1


def test_help_says_what_module_may_be(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for form in ("`mypackage.layers`", "`./src/mymodel.py`", "`Class.method`", "2 no such module"):
        assert form in help_text


def inspect_in_a_process(target, cwd):
    """`python -m autovmap inspect TARGET` run as a user runs it, from `cwd`."""
    return subprocess.run(
        [sys.executable, "-m", "autovmap", "inspect", target],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=CHECKOUT_ENV,
    )


def test_inspect_reports_vectorize_functions_with_their_signature(tmp_path):
    (tmp_path / "vecmod.py").write_text(
        textwrap.dedent("""
            from autovmap import vectorize

            def _dot(a, b):
                return a @ b

            dot = vectorize(_dot, signature="(n),(n)->()")
            scale = vectorize(lambda x, k: x * k, excluded={1})
        """)
    )
    proc = inspect_in_a_process("vecmod.py:dot", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "dot (vectorize, signature='(n),(n)->()')",
        "  parameter  core dims",
        "  a          (n)",
        "  b          (n)",
        "  return     ()",
    ]
    proc = inspect_in_a_process("vecmod.py", tmp_path)
    scale = proc.stdout.split("\n\n")[1].splitlines()
    assert scale[0] == "scale (vectorize, no signature: every argument is batched as rank 0)"
    assert scale[2:] == ["  x          ()", "  k          excluded: passed through"]


def test_unannotated_functions_say_there_is_nothing_to_check_not_checks_off(tmp_path):
    (tmp_path / "plain.py").write_text(
        "from autovmap import auto_vmap\n\n@auto_vmap(x=1)\ndef f(x):\n    return x\n"
    )
    proc = inspect_in_a_process("plain.py", tmp_path)
    assert proc.returncode == 0 and proc.stdout.splitlines()[0] == "f (no annotations to check)"


def test_inspect_dot_is_a_clear_misuse_or_the_package_it_names(tmp_path):
    proc = inspect_in_a_process(".", tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        PROG_ERROR + "'.' is a folder, not a module: give a module name (`mymodel`) or the path "
        "of a .py file in it (`./mymodel.py`)"
    ]
    assert "relative module name" in inspect_in_a_process(".layers", tmp_path).stderr
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from autovmap import auto_vmap\n\n@auto_vmap(x=1)\ndef g(x):\n    return x\n"
    )
    for target, cwd in ((".", package), ("mypkg", tmp_path), ("./mypkg", tmp_path)):
        proc = inspect_in_a_process(target, cwd)
        assert proc.returncode == 0 and proc.stdout.startswith("g ("), (target, proc.stderr)


def test_a_syntax_error_names_the_users_file_and_line(tmp_path):
    (tmp_path / "broken.py").write_text("x = 1\ndef f(:\n    pass\n")
    for target in ("broken.py", "broken"):
        proc = inspect_in_a_process(target, tmp_path)
        assert proc.returncode == 1 and proc.stdout == ""
        [line] = proc.stderr.splitlines()
        assert line.startswith(PROG_ERROR + f"importing {target} raised SyntaxError: ")
        assert line.endswith(f"({tmp_path / 'broken.py'}:2)") and "frozen" not in line

"""`python -m autovmap` (the demo) and `python -m autovmap inspect MODULE[:FUNCTION]`."""

import subprocess
import sys
import textwrap

from autovmap._cli import main

MODULE = textwrap.dedent('''
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
''')


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
        "quad (checks on, chunk_size=64)", "Model.apply (checks on)", "Model.static (checks off)"
    ]
    quad_rows = [line.split()[:4] for line in blocks[0].splitlines()[2:]]
    assert quad_rows[0] == ["s", "float", "0", "explicit"] and "Float[ArrayLike" in blocks[0]
    assert blocks[0].splitlines()[4].split() == ["m", "Float[Array,", "'n", "n']", "2", "annotation"]
    assert "explicit rank 2 differs from the annotation's 1" in blocks[1]
    code, out = run(["inspect", "cli_target:Model.apply"], capsys)
    assert code == 0 and out.startswith("Model.apply") and "quad" not in out


def test_inspect_reports_spec_problems_and_missing_functions(tmp_path, monkeypatch, capsys):
    (tmp_path / "cli_broken.py").write_text("from autovmap import auto_vmap\n\n@auto_vmap(y=1)\ndef f(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out = run(["inspect", "cli_broken"], capsys)
    assert code == 1 and "spec problem" in out and "`y`" in out and "`x`" in out
    (tmp_path / "cli_empty.py").write_text("x = 1\n")
    assert run(["inspect", "cli_empty"], capsys) == (1, "cli_empty: no auto-vmapped function found.\n")


def test_python_dash_m_runs_the_demo():
    out = subprocess.run([sys.executable, "-m", "autovmap"], capture_output=True, text=True, check=True).stdout
    assert "[15. 15. 15. 15. 15.]" in out and "(7, 5)" in out and "do not broadcast" in out

"""The supported versions are stated once, in pyproject.toml, and the README says the same."""

import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from floor_constraints import floor_pins  # noqa: E402


def test_every_runtime_dependency_has_a_floor_that_ci_pins():
    pins = floor_pins()
    assert [pin.split("==")[0] for pin in pins] == ["jax", "jaxtyping", "numpy", "typeguard"]
    assert all(re.fullmatch(r"[\w.-]+==\d+(\.\d+)*", pin) for pin in pins), pins


def test_readme_and_docs_state_the_floors_of_pyproject():
    readme = (ROOT / "README.md").read_text()
    index = (ROOT / "docs" / "index.md").read_text()
    for pin in floor_pins():
        name, floor = pin.split("==")
        assert f"{name} >= {floor}" in readme, f"README.md should say `{name} >= {floor}`"
        assert re.search(rf"{name}\s+≥\s+{re.escape(floor)}\b", index), f"docs/index.md: {name}"


def test_floor_pins_refuse_a_dependency_without_a_floor(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["jax>=0.5.3", "numpy<3"]\n')
    with pytest.raises(ValueError, match="'numpy<3' needs exactly one `>=` floor"):
        floor_pins(pyproject)
    marked = "jax>=0.5.3,<1 ; python_version >= '3.12'"
    pyproject.write_text(f'[project]\ndependencies = ["{marked}"]\n')
    assert floor_pins(pyproject) == ["jax==0.5.3 ; python_version >= '3.12'"]

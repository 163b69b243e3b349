"""The first hour of a new user: each common mistake gets one short, true answer, raised by us,
and the traceback shows the user's line, then the message with its notes together."""

import ast
import dataclasses
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array, Float
from oracle import assert_trees_close

import autovmap
from autovmap import (
    AutoVmapError,
    RankSpecError,
    RankTooLargeError,
    TreeStructureError,
    auto_vmap,
    vectorize,
)

ROOT = pathlib.Path(__file__).resolve().parent.parent


# A list where an array is ranked. Decision: a ranked argument is a pytree, as with `jax.vmap`
# (users rely on `x=[a, b]` meaning two leaves); a list of Python numbers is never converted to
# an array behind the user's back (that would change what `x[0]` or `sum(x)` means), but every
# way it can fail says that `x` is a list and how to pass it.


def test_a_list_of_numbers_under_a_rank_above_0_names_the_list_and_the_fix():
    for value in ([1.0, 2.0], (1, 2, 3), [[1.0, 2.0], [3.0, 4.0]]):
        with pytest.raises(RankTooLargeError) as info:
            auto_vmap(x=1)(lambda x: x * 2)(value)
        message = str(info.value)
        assert f"argument `x` is a {type(value).__name__} of" in message
        assert "Python numbers" in message and "`jnp.asarray(x)`" in message


def test_a_list_of_numbers_under_rank_0_that_fails_in_the_function_gets_a_note():
    square = auto_vmap(x=0)(lambda x: x**2)
    with pytest.raises(TypeError, match="'list' and 'int'") as info:
        square([1.0, 2.0])
    [note] = info.value.__notes__
    assert note.startswith("Note: `x` is a list of 2 Python numbers, so the function got a list")
    assert "`jnp.asarray(x)`" in note
    # With the array it stands for, the call batches over the elements; `vectorize` (as
    # `jnp.vectorize`) converts the list itself.
    np.testing.assert_allclose(square(jnp.asarray([1.0, 2.0])), [1.0, 4.0])
    np.testing.assert_allclose(vectorize(lambda x: x**2)([1.0, 2.0]), [1.0, 4.0])


def test_lists_stay_pytrees_when_they_work_as_pytrees():
    # Rank 0 over a tuple of numbers: two rank-0 leaves, the function gets a tuple.
    assert float(auto_vmap(p=0)(lambda p: p[0] + p[1])((1.0, 2.0))) == 3.0
    # A list of arrays: one leaf each, batched together, against a loop.
    a, b = np.arange(6.0).reshape(2, 3), np.ones(3)
    out = auto_vmap(x=1)(lambda x: x[0] @ x[1])([jnp.asarray(a), jnp.asarray(b)])
    assert_trees_close(out, np.array([a[i] @ b for i in range(2)]))


def test_forgetting_the_function_is_one_line_with_the_type_and_shape():
    with pytest.raises(RankSpecError) as info:
        auto_vmap(x=1)(jnp.ones((1000, 64)))
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, TypeError)
    assert "a `jax.Array` of shape (1000, 64) and dtype float32" in message
    assert "Did you forget the function?" in message
    with pytest.raises(RankSpecError, match="got `3`, an `int`. Did you forget"):
        auto_vmap(x=1)(3)


@dataclasses.dataclass
class Plain:  # not registered as a pytree
    w: Float[Array, "n"]
    b: Float[Array, ""]


@auto_vmap
def affine(x: Float[Array, "n"], p: Plain) -> Float[Array, ""]:
    return x @ p.w + p.b


def test_an_unregistered_dataclass_without_batch_dims_passes_through_whole():
    x, w = np.arange(12.0).reshape(4, 3), np.array([1.0, -1.0, 2.0])
    p = Plain(jnp.asarray(w), jnp.array(0.5))
    assert_trees_close(affine(jnp.asarray(x), p), np.array([x[i] @ w + 0.5 for i in range(4)]))
    seen = []

    @auto_vmap
    def record(x: Float[Array, "n"], p: Plain) -> Float[Array, ""]:
        seen.append(p)
        return x.sum()

    record(jnp.ones((2, 3)), p)
    assert seen and all(s is p for s in seen)  # the very same object, not rebuilt


def test_an_unregistered_dataclass_that_would_need_batching_names_the_field():
    p = Plain(jnp.ones((4, 3)), jnp.array(0.5))
    with pytest.raises(TreeStructureError) as info:
        affine(jnp.ones((4, 3)), p)
    message = str(info.value)
    assert "field `p.w` has batch dims" in message and "register_dataclass" in message
    # A field with fewer dims than its rank is not one example: refused, never passed whole.
    with pytest.raises(RankTooLargeError, match=r"field `p.w` has shape \(\) \(0 dims\)"):
        auto_vmap(check=False)(affine)(jnp.ones((4, 3)), Plain(jnp.array(1.0), jnp.array(0.5)))


@pytest.mark.parametrize(
    "value, dtype",
    [
        (np.array([object(), 1], dtype=object), "object"),
        (np.array([["a", "b"]]), "<U1"),
        (np.array(["2020-01-01"], dtype="datetime64[D]"), "datetime64[D]"),
    ],
)
def test_object_string_and_datetime_arrays_name_the_parameter(value, dtype):
    with pytest.raises(TreeStructureError) as info:
        auto_vmap(x=1)(lambda x: x)(value)
    assert f"argument `x` is an array of dtype {dtype}" in str(info.value)
    with pytest.raises(TreeStructureError, match=r"argument `batch\['names'\]`"):
        auto_vmap(batch=0)(lambda batch: batch)({"x": jnp.ones(2), "names": value})


def test_the_public_namespace_holds_only_the_api():
    public = {name for name in dir(autovmap) if not name.startswith("_")}
    # The typed public surface: what the stub defines at top level, imports aside.
    stub = ast.parse((ROOT / "autovmap" / "__init__.pyi").read_text())
    defined = set()
    for node in stub.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            defined.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defined.add(node.target.id)
        elif isinstance(node, ast.Assign):
            defined.update(
                t.id for t in node.targets if isinstance(t, ast.Name) and t.id != "__all__"
            )
        elif isinstance(node, ast.ImportFrom) and node.module == "typing":
            # a renamed import is a public name of the stub only through its `__all__`
            defined.update(a.asname for a in node.names if a.asname in autovmap.__all__)
    assert public == {name for name in defined if not name.startswith("_")}
    assert set(autovmap.__all__) == public
    assert "importlib" not in dir(autovmap) and "autovmap" in public and "plan" in public


TRACEBACK_SCRIPT = textwrap.dedent("""
    import jax.numpy as jnp
    from jaxtyping import Array, Float
    from autovmap import auto_vmap

    @auto_vmap
    def dist(a: Float[Array, "n"], b: Float[Array, "n"]) -> Float[Array, ""]:
        return jnp.sqrt(jnp.sum((a - b) ** 2))

    @auto_vmap(x=1)
    def mine(x):
        return x.no_such_attribute

    import sys
    from autovmap import vectorize
    if sys.argv[1] == "check":
        dist(jnp.ones((4, 3)), jnp.zeros((4, 2)))
    elif sys.argv[1] == "vectorize":
        vectorize(lambda a, b: a @ b, signature="(n),(n)->()")(jnp.ones(3), jnp.ones(2))
    else:
        mine(jnp.ones((4, 3)))
""")


def run_script(tmp_path, which, **env):
    script = tmp_path / "user_script.py"
    script.write_text(TRACEBACK_SCRIPT)
    return subprocess.run(
        [sys.executable, str(script), which],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    ).stderr


def without_carets(text: str) -> list[str]:
    """The lines of a traceback, less the `~~~^^^` lines newer Pythons put under a call."""
    return [line for line in text.splitlines() if line.strip(" ~^")]


def test_a_traceback_shows_the_users_line_then_the_message_with_its_notes(tmp_path):
    lines = without_carets(run_script(tmp_path, "check"))
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith(f'  File "{tmp_path / "user_script.py"}", line ')
    assert lines[2].strip() == "dist(jnp.ones((4, 3)), jnp.zeros((4, 2)))"
    assert lines[3].startswith("autovmap._errors.AnnotationCheckError: `auto_vmap(dist)`")
    assert not any("autovmap/" in line for line in lines)
    batch_note = lines.index("The call has batch shape (4,); the shape above is of one example.")
    assert lines[batch_note + 1 :] == [
        "--------------------",
        "For simplicity, JAX has removed its internal frames from the traceback of the following "
        "exception. Set JAX_TRACEBACK_FILTERING=off to include these.",
    ]


def test_vectorize_errors_show_the_users_line_then_the_message(tmp_path):
    lines = without_carets(run_script(tmp_path, "vectorize"))
    assert lines[2].strip().startswith("vectorize(lambda a, b: a @ b")
    assert lines[3].startswith("autovmap._errors.CoreDimError: `vectorize(<lambda>)`")


def test_an_error_in_the_users_function_keeps_the_users_frames(tmp_path):

    text = run_script(tmp_path, "mine")
    assert "return x.no_such_attribute" in text and "mine(jnp.ones((4, 3)))" in text
    assert "autovmap/" not in text
    assert "autovmap/" in run_script(tmp_path, "mine", JAX_TRACEBACK_FILTERING="off")


def test_tidied_errors_are_still_the_same_errors():
    with pytest.raises(RankTooLargeError) as info:
        auto_vmap(a=1)(lambda a: a)(jnp.ones(()))
    assert isinstance(info.value, AutoVmapError) and isinstance(info.value, ValueError)
    with pytest.raises(AttributeError, match="no_such"):
        jax.jit(auto_vmap(x=1)(lambda x: x.no_such))(jnp.ones((2, 3)))


def test_every_public_exception_and_warning_is_on_the_api_page_and_the_errors_page():
    api = (ROOT / "docs" / "api.md").read_text()
    errors = (ROOT / "docs" / "errors.md").read_text()
    classes = [
        name
        for name in dir(autovmap)
        if isinstance(getattr(autovmap, name), type)
        and issubclass(getattr(autovmap, name), Warning | AutoVmapError)
    ]
    assert "NothingToBatchWarning" in classes and "BroadcastError" in classes
    for name in classes:
        assert f"::: autovmap.{name}\n" in api, name
        assert name in errors.split("```python")[0], f"{name} is not in the errors page's tree"

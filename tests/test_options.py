"""The options of `auto_vmap` (everything but ranks): validated when decorating, never confused
with ranks, kept by re-decoration."""

import ast
import dataclasses
import inspect
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from oracle import assert_trees_close

import autovmap
from autovmap import AutoVmap, AutoVmapError, OptionError, RankSpecError, auto_vmap
from autovmap._options import OPTION_NAMES, Options


@pytest.mark.parametrize(
    "options, error, needle",
    [
        ({"check": 1}, TypeError, "check"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"chunk_size": True}, TypeError, "chunk_size"),
        ({"axis_name": 0}, TypeError, "axis_name"),
        ({"axis_name": "batch", "chunk_size": 2}, ValueError, "chunk at a time"),
        ({"spmd_axis_name": 3}, TypeError, "spmd_axis_name"),
        ({"signature": ["(n)->()"]}, TypeError, "signature"),
    ],
)
def test_bad_options_are_refused_when_written(options, error, needle):
    with pytest.raises(error, match=needle) as info:
        auto_vmap(x=1, **options)
    assert not isinstance(info.value, RankSpecError)  # an option is not a rank
    assert isinstance(info.value, OptionError) and isinstance(info.value, AutoVmapError)
    with pytest.raises(OptionError, match=needle):  # every entry point validates the same way
        AutoVmap(x=1, **options)
    with pytest.raises(OptionError, match=needle):
        auto_vmap(lambda x: x, **options)


def _stub_keyword_options(tree: ast.Module, function: str) -> list[list[str]]:
    """The keyword-only parameter names of each definition of `function` in the stub."""
    return [
        [a.arg for a in node.args.kwonlyargs]
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == function and node.args.kwonlyargs
    ]


def test_the_options_are_listed_once_and_the_stub_and_signatures_agree():
    names = [field.name for field in dataclasses.fields(Options)]
    assert list(OPTION_NAMES) == names
    signature = inspect.signature(auto_vmap)
    keyword_only = [p for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY]
    assert [p.name for p in keyword_only] == names
    # `help(auto_vmap)` shows the real defaults, not `<object object at 0x...>`.
    defaults = {field.name: field.default for field in dataclasses.fields(Options)}
    assert {p.name: repr(p.default) for p in keyword_only} == {
        name: repr(value) for name, value in defaults.items()
    }
    assert "object at 0x" not in str(signature)
    # The API page reads the source: it shows the same plain defaults.
    source = ast.parse(inspect.getsource(inspect.getmodule(auto_vmap)))
    definition = next(
        node
        for node in ast.walk(source)
        if isinstance(node, ast.FunctionDef) and node.name == "auto_vmap"
    )
    assert [a.arg for a in definition.args.kwonlyargs] == names
    assert [ast.literal_eval(d) for d in definition.args.kw_defaults] == list(defaults.values())
    stub = ast.parse(
        (pathlib.Path(autovmap.__file__).parent / "__init__.pyi").read_text(), type_comments=True
    )
    typed_dict = next(
        node
        for node in ast.walk(stub)
        if isinstance(node, ast.ClassDef) and node.name == "_Options"
    )
    fields = [n.target.id for n in typed_dict.body if isinstance(n, ast.AnnAssign)]
    assert fields == names
    assert names in _stub_keyword_options(stub, "auto_vmap")  # the overload taking ranks
    assert names in _stub_keyword_options(stub, "__init__")  # `AutoVmap(...)`


def test_an_option_given_equal_to_its_default_still_overrides_on_re_decoration():
    chunked = auto_vmap(x=1, chunk_size=2)(lambda x: x.sum())
    unchunked = auto_vmap(chunk_size=None)(chunked)
    assert chunked.__autovmap__.options.chunk_size == 2
    assert unchunked.__autovmap__.options.chunk_size is None


@pytest.mark.parametrize(
    "option", ["check", "chunk_size", "axis_name", "spmd_axis_name", "signature"]
)
def test_an_option_named_like_a_parameter_is_ambiguous(option):
    value = {
        "check": False,
        "chunk_size": 2,
        "axis_name": "b",
        "spmd_axis_name": "x",
        "signature": "(n),()->()",
    }[option]
    namespace: dict = {}
    exec(f"def f(x, {option}):\n    return x", namespace)
    with pytest.raises(RankSpecError, match=rf"`{option}` is both a parameter.*positionally"):
        auto_vmap(x=1, **{option: value})(namespace["f"])
    assert auto_vmap(1, 0)(namespace["f"])(jnp.ones((4, 3)), jnp.ones(4)).shape == (4, 3)


def centred(x, w):
    return w * (x - jax.lax.pmean(x, "batch"))


@pytest.mark.parametrize(
    "x_shape, w_shape", [((8,), (8,)), ((2, 4), (4,)), ((2, 1), (4,))], ids=str
)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_axis_name_covers_every_batch_dim(x_shape, w_shape, jit):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    w = jnp.asarray(rng.normal(size=w_shape), jnp.float32)
    f = auto_vmap(x=0, w=0, axis_name="batch")(centred)
    out = (jax.jit(f) if jit else f)(x, w)
    xb = np.broadcast_to(np.asarray(x), np.broadcast_shapes(x_shape, w_shape))
    assert_trees_close(out, np.asarray(w) * (xb - xb.mean()))


def test_axis_name_is_bound_in_an_unbatched_call():
    f = auto_vmap(x=0, axis_name="batch")(lambda x: x + jax.lax.psum(1, "batch"))
    assert f(jnp.float32(1.0)) == 2.0


def test_re_decoration_keeps_options_and_adds_new_ones():
    f = auto_vmap(x=0, axis_name="batch")(centred)
    g = auto_vmap(spmd_axis_name=P(None))(f)
    assert g.__autovmap__.options.axis_name == "batch"
    assert g.__autovmap__.options.spmd_axis_name == P(None)
    with pytest.raises(ValueError, match="chunk at a time"):
        auto_vmap(chunk_size=2)(f)

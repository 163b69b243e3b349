"""Named core dims: NumPy gufunc signatures and jaxtyping-style dim strings, read when decorating.

`read_core_dims` (called by `read_spec`) turns dim strings (`v="n"`, `m="n n"`) and a
`signature="(n),(n,n)->()"` into plain int ranks, and records which dims carry a name (or a
fixed size), per parameter, plus the signature's outputs: a `CoreDims`, `CallSpec.core`. On
every call `_check.core_sizes` compares the named dims over the shapes of the ranked leaves
(shapes only: no tracing, no typeguard) before `jax.vmap` runs, and `_check.OutputChecker`
compares each example's return value with the signature's outputs.

The rules, documented in docs/ranks.md:

- A parameter's named dims come from the same place as its rank: its dim string, its entry in
  the signature, or (with neither) its jaxtyping annotation. An int rank names nothing.
- Signature entries go, in order, to the named parameters, skipping a leading `self`/`cls` and
  parameters ranked `None` explicitly. An explicit rank or an annotation of the same parameter
  must give the same rank (else `RankSpecError`).
- Like-named dims have equal sizes everywhere; a size-1 core dim never stretches (only `#n`,
  from a dim string or annotation, accepts size 1). A dim of fixed size (`3`) has that size.
- Annotation names are compared here only with `check=False`; with `check=True` jaxtyping's
  per-example checks compare them (`AnnotationCheckError`), except names that a signature or dim
  string uses too, which are compared here across every parameter.

This module imports nothing of the call path (`_bind`, `_describe`), which imports it.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jaxtyping

from ._annotations import (
    AnnotationReader,
    NoSingleRank,
    VariadicAnnotation,
    _is_pytree_annotation,
    annotation_str,
    is_array_annotation,
    unwrap,
)
from ._errors import RankSpecError, fn_label

if TYPE_CHECKING:
    from ._bind import RankedArgument

_P = inspect.Parameter
_UNION_TYPES = (typing.Union, type(int | None))


class Dim(NamedTuple):
    """One core dimension: named, of fixed size, or neither (anonymous: any size)."""

    name: str | None = None
    size: int | None = None
    broadcastable: bool = False  # `#n`: size 1 is accepted whatever `n` is

    def __str__(self) -> str:
        text = self.name if self.name is not None else "_" if self.size is None else str(self.size)
        return "#" + text if self.broadcastable else text


ArgDims = tuple[Dim, ...]

_ANONYMOUS = Dim()


def fmt_dims(dims: ArgDims) -> str:
    """`(n, k)`: core dims as messages show them, whatever syntax they were written in."""
    return "(" + ", ".join(map(str, dims)) + ")"


def _checkable(dims: ArgDims) -> bool:
    return any(d.name is not None or d.size is not None for d in dims)


# --------------------------------------------------------------------------------------------
# Parsing


@dataclasses.dataclass(frozen=True)
class Gufunc:
    """A parsed gufunc signature: the core dims of each input and output.

    Attributes:
        inputs: one entry per input, given to the parameters in order.
        outputs: one entry per output, or `None`: outputs are not checked.
        text: the signature as the user wrote it, for messages; `None` without one.
        skips_self: whether a leading `self`/`cls` parameter takes no entry (`auto_vmap`), or
            every parameter does (the parameters `vectorize` makes for one call).
    """

    inputs: tuple[ArgDims, ...]
    outputs: tuple[ArgDims, ...] | None
    text: str | None
    skips_self: bool = True


def parse_signature(signature: str) -> Gufunc:
    """The core dims of the inputs and of the outputs of a NumPy gufunc signature.

    `"(m,n),(n)->(m)"`: each entry is a parenthesised, comma-separated list of dims; a dim is a
    name (letters, digits, `_`) or an integer, which fixes the size (as in NumPy). Whitespace
    is ignored (as in NumPy). Raises `ValueError` with the position of the first mistake.
    """
    if not isinstance(signature, str):
        raise TypeError(f"a signature is a str such as '(n),(n,n)->()', not {signature!r}")
    text = "".join(signature.split())
    inputs, sep, outputs = text.partition("->")
    if not sep:
        raise ValueError("no `->`: a gufunc signature lists inputs, `->`, then outputs")
    return Gufunc(_parse_entries(inputs, "inputs"), _parse_entries(outputs, "outputs"), signature)


def _parse_entries(text: str, side: str) -> tuple[ArgDims, ...]:
    entries: list[ArgDims] = []
    rest = text
    while True:
        if not rest.startswith("("):
            found = f"{rest[0]!r}" if rest else "nothing"
            raise ValueError(
                f"its {side} need `(` to start entry {len(entries) + 1}, found {found}"
            )
        close = rest.find(")")
        if close < 0:
            raise ValueError(f"entry {len(entries) + 1} of its {side} has no closing `)`")
        body, rest = rest[1:close], rest[close + 1 :]
        dims = []
        for token in body.split(",") if body else []:
            if not token or not all(c.isalnum() or c == "_" for c in token):
                raise ValueError(
                    f"entry ({body}) of its {side} has the dim {token!r}; a dim is a name "
                    "(letters, digits, `_`) or an integer"
                )
            dims.append(Dim(size=int(token)) if token.isdigit() else Dim(name=token))
        entries.append(tuple(dims))
        if not rest:
            return tuple(entries)
        if not rest.startswith(","):
            raise ValueError(f"its {side} need `,` between entries, found {rest[0]!r}")
        rest = rest[1:]


def _dims_of_jaxtyping(dims: Sequence[Any]) -> ArgDims:
    """jaxtyping's parsed dims (`AbstractArray.dims`), read through their fields."""
    result = []
    for d in dims:
        broadcastable = bool(getattr(d, "broadcastable", False))
        if isinstance(getattr(d, "name", None), str):
            result.append(Dim(name=d.name, broadcastable=broadcastable))
        elif isinstance(getattr(d, "size", None), int):
            result.append(Dim(size=d.size, broadcastable=broadcastable))
        else:  # anonymous `_`/`_n`, or symbolic `n+1`: jaxtyping's own checks handle those
            result.append(_ANONYMOUS)
    return tuple(result)


def dims_of_string(text: str) -> ArgDims:
    """The dims of a jaxtyping dim string (`"n n"`, `""`, `"3 _ #k"`), parsed by jaxtyping
    itself, so it means exactly what it means in an annotation. Raises `ValueError`."""
    if text.lstrip().startswith("("):
        raise ValueError("gufunc syntax `(n,k)` belongs in `signature=`; a dim string is `n k`")
    try:
        t: Any = jaxtyping.Shaped[jax.Array, text]
    except Exception as e:  # noqa: BLE001 - jaxtyping's own complaint about the string
        raise ValueError(f"jaxtyping cannot read it: {e}") from None
    if t.index_variadic is not None:
        raise ValueError("a variadic dim (`*b`, `...`) gives no fixed rank")
    return _dims_of_jaxtyping(t.dims)


def dim_string_error(fn: Any, name: str, text: str, error: ValueError) -> RankSpecError:
    return RankSpecError(
        f"{fn_label(fn)}: the dim string {text!r} given for parameter `{name}` is not valid: "
        f'{error}. A dim string is written as in jaxtyping: `""` for a scalar, `"n"`, '
        '`"n k"`, `"3"` for a fixed size, `"_"` for any size.'
    )


def dims_of_annotation(t: Any) -> ArgDims | None:
    """The dims an annotation names for each array leaf, when it gives one fixed rank: array
    annotations, `PyTree[...]` and `Optional`/unions of those (members must agree)."""
    try:
        t = unwrap(t)
    except NoSingleRank:
        return None
    if is_array_annotation(t):
        return None if t.index_variadic is not None else _dims_of_jaxtyping(t.dims)
    if _is_pytree_annotation(t):
        return dims_of_annotation(t.leaftype)
    if typing.get_origin(t) in _UNION_TYPES:
        found = {dims_of_annotation(m) for m in typing.get_args(t)} - {None}
        return found.pop() if len(found) == 1 else None
    return None


# --------------------------------------------------------------------------------------------
# When decorating


@dataclasses.dataclass(frozen=True)
class TreeDims:
    """Dims for a parameter with a pytree rank whose leaves include dim strings: one entry
    (dims, or `None`) per leaf of the rank tree, in flattening order."""

    treedef: Any
    leaves: tuple[ArgDims | None, ...]


ParamDims = ArgDims | TreeDims

# What the per-call loop compares for one array leaf: its named and fixed dims, each as (index
# from the end of the shape, name ("" for a fixed size), fixed size, broadcastable).
Check = tuple[int, str, int | None, bool]


def compile_dims(dims: ArgDims) -> tuple[Check, ...]:
    return tuple(
        (i - len(dims), d.name or "", d.size, d.broadcastable)
        for i, d in enumerate(dims)
        if d.name is not None or d.size is not None
    )


@dataclasses.dataclass(frozen=True, eq=False)
class CoreDims:
    """The named core dims of a decorated function: `CallSpec.core`.

    Attributes:
        params: per parameter name, the dims of each of its array leaves (only parameters with
            a name or a fixed size in them).
        outputs: the signature's output entries, or `None` when outputs are not checked.
        signature: the signature as written, for messages; `None` without one.
        checks: `params` compiled for the per-call loop: a `TreeDims` stays as it is.
        arity: the number of positional parameters.
        plain: for calls of positional arguments only, each positional parameter with checks
            (its position, and its checks); `None` where one is a pytree (`TreeDims`).
    """

    params: Mapping[str, ParamDims]
    outputs: tuple[ArgDims, ...] | None
    signature: str | None
    checks: Mapping[str, tuple[Check, ...] | TreeDims] = dataclasses.field(repr=False)
    arity: int = dataclasses.field(repr=False)
    plain: tuple[tuple[int, tuple[Check, ...]], ...] | None = dataclasses.field(repr=False)

    def sizes(self, args: tuple[Any, ...]) -> dict[str, int] | None:
        """The size of each named dim in a call of positional arguments only, each `None` or
        an array of at least its rank (dims are read from the end of the shape, so batched or
        not, and one example); `None` if the dims do not agree or this cannot tell (other
        arguments), which the full path (`_check.named_sizes`) then explains."""
        plain = self.plain
        if plain is None or len(args) != self.arity:
            return None
        sizes: dict[str, int] = {}
        for i, checks in plain:
            value = args[i]
            if value is None:
                continue
            shape = getattr(value, "shape", None)
            if shape is None or compare_dims(shape, checks, sizes) is not None:
                return None
        return sizes


class Disagreement(NamedTuple):
    """A core dim of a shape that does not fit: its name (`""` for a dim of fixed size), the
    size found, and the size expected (the fixed size, or the one the name had before)."""

    name: str
    size: int
    expected: int


def compare_dims(
    shape: Sequence[int], checks: tuple[Check, ...], sizes: dict[str, int]
) -> Disagreement | None:
    """The one named-size check: record in `sizes` the size of each named dim of `shape`
    (whose last dims are the core dims `checks` describe), and return the first dim that
    disagrees with a fixed size or with the size its name has already, or `None`. A size-1
    broadcastable (`#n`) dim is skipped. Calls (`_check.named_sizes`, `CoreDims.sizes`) and
    each example's outputs (`_check.OutputChecker`) are compared with it."""
    for back, name, fixed, broadcastable in checks:
        size = shape[back]
        if broadcastable and size == 1:
            continue
        if fixed is not None:
            if size != fixed:
                return Disagreement("", size, fixed)
        else:
            known = sizes.setdefault(name, size)
            if known != size:
                return Disagreement(name, size, known)
    return None


def _is_str(x: object) -> bool:
    return isinstance(x, str)


def _split(rank: Any) -> tuple[Any, ParamDims | None]:
    """A validated rank with its dim strings replaced by their int ranks, and the dims they
    name (`None` when it has no dim string)."""
    if isinstance(rank, str):
        dims = dims_of_string(rank)
        return len(dims), dims
    if rank is None or isinstance(rank, int):
        return rank, None
    leaves, treedef = jax.tree_util.tree_flatten(rank, is_leaf=lambda x: x is None)
    if not any(map(_is_str, leaves)):
        return rank, None
    split = [_split(leaf) for leaf in leaves]
    tree = TreeDims(treedef, tuple(d if isinstance(d, tuple) else None for _, d in split))
    return jax.tree_util.tree_unflatten(treedef, [r for r, _ in split]), tree


def read_explicit(rank: Any) -> tuple[Any, ParamDims | None]:
    """The reader of an explicit rank (validated): its int rank(s), dim strings replaced by
    their int ranks, and the dims those name (`None` when it has no dim string)."""
    return _split(rank)


def signature_entries(
    fn: Any, signature: inspect.Signature, explicit: Mapping[str, Any], gufunc: Gufunc
) -> dict[str, ArgDims]:
    """The signature entry of each parameter it ranks: in order, skipping `*args`/`**kwargs`,
    a leading `self`/`cls` (unless `gufunc.skips_self` is off) and parameters explicitly ranked
    `None`. Too many entries is a `RankSpecError`."""
    eligible = [
        p
        for i, p in enumerate(signature.parameters.values())
        if p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
        and not (gufunc.skips_self and i == 0 and p.name in ("self", "cls"))
        and not (p.name in explicit and explicit[p.name] is None)
    ]
    if len(gufunc.inputs) > len(eligible):
        listed = ", ".join(f"`{p.name}`" for p in eligible) or "none"
        raise RankSpecError(
            f"{fn_label(fn)}: `signature={gufunc.text!r}` has {len(gufunc.inputs)} inputs, "
            f"but the function has only {len(eligible)} parameters to give them to "
            f"({listed}). Signature entries go to the parameters in order, skipping a "
            "leading `self`/`cls` and parameters ranked `None`; `*args` and `**kwargs` "
            "take none."
        )
    return {p.name: entry for p, entry in zip(eligible, gufunc.inputs)}


def core_dims(
    dims: Mapping[str, tuple[ParamDims, str]],
    parameters: Sequence[inspect.Parameter],
    gufunc: Gufunc | None,
    check: bool,
) -> CoreDims | None:
    """The named core dims calls compare, from each parameter's dims and the source of its
    rank (`read_spec` decides both). With `check`, names from annotations alone are left to
    jaxtyping's per-example checks: only those a signature or dim string uses too are kept."""
    shared = {
        d.name
        for found, source in dims.values()
        if source != "annotation"
        for d in _all_dims(found)
        if d.name is not None
    }
    kept: dict[str, ParamDims] = {}
    for name, (found, source) in dims.items():
        if check and source == "annotation":
            assert not isinstance(found, TreeDims)
            found = tuple(d if d.name in shared else _ANONYMOUS for d in found)
        if any(map(_checkable, _per_leaf(found))):
            kept[name] = found
    outputs = None if gufunc is None else gufunc.outputs
    if not kept and outputs is None:
        return None
    checks = {name: d if isinstance(d, TreeDims) else compile_dims(d) for name, d in kept.items()}
    positional = [
        checks.get(p.name, ())
        for p in parameters
        if p.kind in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
    ]
    plain: tuple[tuple[int, tuple[Check, ...]], ...] | None = tuple(
        (i, c) for i, c in enumerate(positional) if c and not isinstance(c, TreeDims)
    )
    if any(isinstance(c, TreeDims) for c in positional):
        plain = None  # a pytree: the full path (`_check.named_sizes`) reads it
    text = None if gufunc is None else gufunc.text
    return CoreDims(kept, outputs, text, checks, len(positional), plain)


def _per_leaf(dims: ParamDims) -> Iterator[ArgDims]:
    if isinstance(dims, TreeDims):
        yield from (d for d in dims.leaves if d is not None)
    else:
        yield dims


def _all_dims(dims: ParamDims) -> Iterator[Dim]:
    for leaf in _per_leaf(dims):
        yield from leaf


def agree(
    fn: Any,
    gufunc: Gufunc,
    name: str,
    entry: ArgDims,
    explicit: tuple[Any, ParamDims | None] | None,
    annotation: Any,
    reader: AnnotationReader,
) -> None:
    """A parameter ranked by the signature and also explicitly (`explicit`: what
    `read_explicit` read) or by its annotation: the two must say the same."""
    where = f"its signature entry {fmt_dims(entry)} (in `signature={gufunc.text!r}`)"
    if explicit is not None:
        rank, named = explicit
        same = rank == len(entry) if named is None else named == entry
        if isinstance(rank, bool) or not isinstance(rank, int) or not same:
            given = fmt_dims(named) if isinstance(named, tuple) else repr(rank)
            raise RankSpecError(
                f"{fn_label(fn)}: parameter `{name}` is given {given} explicitly, which "
                f"contradicts {where}. Give its rank in one place: drop the explicit rank, or "
                "fix the signature."
            )
        return
    try:
        implied = reader.rank(annotation)
    except (VariadicAnnotation, NoSingleRank):
        return  # no fixed rank of its own: the signature pins it
    if isinstance(implied, int) and implied != len(entry):
        raise RankSpecError(
            f"{fn_label(fn)}: parameter `{name}` is annotated `{annotation_str(annotation)}` "
            f"(rank {implied}), which contradicts {where} (rank {len(entry)}). Make the "
            "annotation and the signature agree."
        )


def signature_error(label: str, signature: object, error: Exception) -> RankSpecError:
    """`label`: how messages name the function (`fn_label`)."""
    return RankSpecError(
        f"{label}: `signature={signature!r}` is not a gufunc signature: {error}. "
        "Write it as NumPy does, e.g. '(m,n),(n)->(m)'."
    )


# --------------------------------------------------------------------------------------------
# On every call: which dims each ranked leaf of an argument has


def leaf_dims(dims: ParamDims, argument: RankedArgument) -> list[ArgDims | None]:
    """Per ranked leaf of `argument` (in the order of its `slots`), its dims. A `TreeDims` is
    expanded over the value (rare: pytree ranks with dim strings in them)."""
    if not isinstance(dims, TreeDims):
        return [dims] * len(argument.slots)
    per_flat: list[ArgDims | None] = []
    ranks = jax.tree_util.tree_leaves(argument.param.rank, is_leaf=lambda x: x is None)
    subtrees = dims.treedef.flatten_up_to(argument.value)
    for leaf_dims_, rank, subtree in zip(dims.leaves, ranks, subtrees):
        count = 1 if rank is None else len(jax.tree_util.tree_leaves(subtree))
        per_flat.extend([leaf_dims_] * count)
    return [per_flat[slot] for slot in argument.slots]

"""The decorated callable, read once: its signature, annotations, and one rank per parameter.

Everything here depends only on the callable, so it runs when decorating; a call only looks the
results up. Every mistake in a rank specification is a `RankSpecError` raised from here.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax

from ._annotations import (
    AnnotationReader,
    NoSingleRank,
    VariadicAnnotation,
    annotation_str,
)
from ._errors import RankSpecError, fn_label
from ._signature import (
    ArgDims,
    CoreDims,
    Gufunc,
    ParamDims,
    agree,
    core_dims,
    dim_string_error,
    dims_of_annotation,
    dims_of_string,
    parse_signature,
    read_explicit,
    signature_entries,
    signature_error,
)

# A rank is `None` (not batched), an `int >= 0`, or a pytree of those (prefix semantics, like
# `jax.vmap`'s `in_axes`). Ranks read from annotations may also be a `FieldRanks`/`EachRank`.
# Explicit ranks may hold dim strings (`"n k"`) too; `ParamRank.rank` has their int ranks.
RankTree = Any

_P = inspect.Parameter


def is_none(x: object) -> bool:
    return x is None


@dataclasses.dataclass(frozen=True)
class ParamRank:
    """The resolved rank of one parameter and where it came from."""

    name: str
    index: int  # position in the signature
    kind: inspect._ParameterKind
    rank: RankTree
    source: str  # "explicit", "signature", "annotation" or "none"

    def label(self, key: int | str) -> str:
        """How messages name the argument bound to this parameter at `key` (a position in
        `args` or a name in `kwargs`): `v`, `*args[1]`, `**kwargs['x']`."""
        if self.kind is _P.VAR_POSITIONAL:
            return f"*{self.name}[{key - self.index}]"  # type: ignore[operator]
        if self.kind is _P.VAR_KEYWORD:
            return f"**{self.name}[{key!r}]"
        return self.name


@dataclasses.dataclass(frozen=True, eq=False)
class CallSpec:
    """A callable's signature with one rank per parameter, laid out so that binding a call is a
    few lookups."""

    fn: Callable[..., Any]
    signature: inspect.Signature
    annotations: Mapping[str, Any]  # resolved annotations by name, "return" included
    explicit: Mapping[str, RankTree]  # the explicit ranks, validated, by parameter name
    gufunc: Gufunc | None  # the `signature=` option, parsed
    core: CoreDims | None  # the named core dims to check on each call; `None`: none
    params: tuple[ParamRank, ...]
    positional: tuple[ParamRank, ...]  # parameters that positional arguments fill, in order
    by_keyword: Mapping[str, ParamRank]  # parameters a keyword argument may name
    var_positional: ParamRank | None
    var_keyword: ParamRank | None
    # Required positional parameters always come first, so a call with at least this many
    # positional arguments has them all.
    required_positional: int
    required_keyword_only: tuple[ParamRank, ...]
    # Ranked defaults are batched like passed arguments, as in `jax-autovmap`: those a keyword
    # can name are passed by keyword, positional-only ones by padding `args` with the defaults
    # from position `first_padded` on.
    keyword_defaults: tuple[tuple[ParamRank, Any], ...]
    first_padded: int
    padding: tuple[Any, ...]
    # A call giving exactly the positional arguments, `plain_arity` of them, needs no other
    # binding where every positional rank is an int or `None` (else `plain_arity` is `None`);
    # `plain_ranked` then holds each int-ranked position and its rank.
    plain_arity: int | None
    plain_ranked: tuple[tuple[int, int], ...]

    @property
    def any_ranked(self) -> bool:
        return any(p.rank is not None for p in self.params)


def _invalid_rank(fn: Any, name: str, rank: object, detail: str) -> RankSpecError:
    return RankSpecError(
        f"{fn_label(fn)}: the rank given for parameter `{name}` is {rank!r}, {detail}. A rank is "
        'an int >= 0 (the number of dimensions of one example), a dim string such as `"n k"` '
        "(rank 2, with named dims), `None` (not batched), or a pytree of those matching the "
        "argument, like `jax.vmap`'s `in_axes`."
    )


def _dim_string(fn: Any, name: str, text: str) -> str:
    try:
        dims_of_string(text)
    except ValueError as e:
        raise dim_string_error(fn, name, text, e) from None
    return text


def validate_rank(fn: Any, name: str, rank: object) -> RankTree:
    """Check one user-given rank; return it with every int leaf normalised to `int` (dim
    strings are kept: `read_explicit` reads their names)."""
    if rank is None:
        return None
    if isinstance(rank, str):
        return _dim_string(fn, name, rank)
    if isinstance(rank, bool):
        raise _invalid_rank(fn, name, rank, "a bool; write 0 or 1 if you meant a rank")
    if isinstance(rank, numbers.Integral):
        if rank < 0:
            raise _invalid_rank(fn, name, rank, "negative")
        return int(rank)
    leaves, treedef = jax.tree_util.tree_flatten(rank, is_leaf=is_none)
    if len(leaves) == 1 and leaves[0] is rank:  # itself a leaf: a float, a str, a function...
        raise _invalid_rank(fn, name, rank, f"of type `{type(rank).__name__}`")
    for leaf in leaves:
        if isinstance(leaf, str):
            _dim_string(fn, name, leaf)
        elif leaf is not None and (
            isinstance(leaf, bool) or not isinstance(leaf, numbers.Integral) or leaf < 0
        ):
            raise _invalid_rank(
                fn,
                name,
                rank,
                f"a pytree with the leaf {leaf!r}, which is not an int >= 0, a dim string or None",
            )
    return jax.tree_util.tree_unflatten(
        treedef, [r if r is None or isinstance(r, str) else int(r) for r in leaves]
    )


def explicit_ranks(
    fn: Any,
    signature: inspect.Signature,
    positional_ranks: tuple[object, ...],
    keyword_ranks: Mapping[str, object],
) -> dict[str, RankTree]:
    """The validated explicit rank of each parameter named. Positional ranks fill the
    parameters in signature order (`self` included), as in `jax-autovmap`."""
    parameters = list(signature.parameters)
    valid = ", ".join(f"`{n}`" for n in parameters) or "(none)"
    if len(positional_ranks) > len(parameters):
        raise RankSpecError(
            f"{fn_label(fn)}: {len(positional_ranks)} positional ranks given, but the function "
            f"has only {len(parameters)} parameters ({valid}). Positional ranks fill the "
            "parameters in order; remove the extra ones or give ranks by name."
        )
    explicit: dict[str, object] = dict(zip(parameters, positional_ranks))
    for name, rank in keyword_ranks.items():
        if name not in parameters:
            raise RankSpecError(
                f"{fn_label(fn)}: a rank is given for `{name}`, which is not a parameter of the "
                f"function. Its parameters are {valid}."
            )
        if name in explicit:
            raise RankSpecError(
                f"{fn_label(fn)}: parameter `{name}` is given a rank twice, positionally "
                f"({explicit[name]!r}) and by keyword ({rank!r}). Give it once."
            )
        explicit[name] = rank
    return {name: validate_rank(fn, name, rank) for name, rank in explicit.items()}


def _annotated_function(fn: Any) -> Any:
    """The function whose code and annotations a call of `fn` runs: through
    `functools.partial`, bound methods, `functools.wraps` wrappers and callable objects."""
    target = fn
    for _ in range(100):  # a bound on pathological self-referencing wrappers
        if isinstance(target, functools.partial):
            target = target.func
        elif inspect.ismethod(target):
            target = target.__func__
        elif getattr(target, "__wrapped__", None) is not None:
            target = getattr(target, "__wrapped__")  # noqa: B009 - any object may carry one
        elif isinstance(target, types.FunctionType) or isinstance(target, type):
            break
        elif callable(target) and not isinstance(target, types.BuiltinFunctionType):
            target = type(target).__call__  # a callable object: its class's `__call__`
        else:
            break
    return target


def _refuse_non_functions(fn: Any, target: Any) -> None:
    kind = (
        "an `async def` function"
        if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)
        else "a generator function"
        if inspect.isgeneratorfunction(target)
        else None
    )
    if kind is not None:
        raise RankSpecError(
            f"{fn_label(fn)}: `auto_vmap` cannot batch {kind}: `jax.vmap` needs the arrays it "
            "returns, not a coroutine or generator. Batch a plain function that computes one "
            "example, and call it from your async or generator code."
        )


def _signature(fn: Any) -> inspect.Signature:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise RankSpecError(
            f"{fn_label(fn)}: cannot read the signature of {fn!r} ({e}); `auto_vmap` needs a "
            "Python function or a callable with an inspectable signature."
        ) from None


def _unresolved_error(fn: Any, name: str, reason: str) -> RankSpecError:
    return RankSpecError(
        f"{fn_label(fn)}: cannot resolve the annotation of parameter `{name}` ({reason}). "
        "Define the names it uses at module level, or give the rank explicitly: "
        f"`auto_vmap({name}=RANK)` (or `{name}=None`)."
    )


def _annotation_error(fn: Any, name: str, annotation: Any, error: Exception) -> RankSpecError:
    why = (
        "whose variadic dimension gives it no fixed rank"
        if isinstance(error, VariadicAnnotation)
        else f"which gives no single rank: {error}"
    )
    return RankSpecError(
        f"{fn_label(fn)}: parameter `{name}` is annotated `{annotation_str(annotation)}`, {why}. "
        f"Give the per-example rank explicitly, `auto_vmap({name}=RANK)`, or "
        f"`auto_vmap({name}=None)` to leave it unbatched."
    )


class _Read(NamedTuple):
    """What one source says about a parameter: its rank and the dims it names."""

    rank: RankTree
    dims: ParamDims | None
    source: str  # "explicit", "signature", "annotation" or "none"


def _read_param(
    fn: Any,
    name: str,
    explicit: Mapping[str, RankTree],
    entries: Mapping[str, ArgDims],
    gufunc: Gufunc | None,
    annotations: Mapping[str, Any],
    unresolved: Mapping[str, str],
    reader: AnnotationReader,
) -> _Read:
    """The one place rank precedence is decided: the explicit rank (an int, or a dim string)
    wins over the signature entry, which wins over the annotation. A signature entry must
    agree with the other two where they give a rank (else `RankSpecError`); an explicit int
    rank names no dims, so the entry's names apply."""
    entry = entries.get(name)
    annotation = annotations.get(name)
    if name in explicit:
        rank, dims = read_explicit(explicit[name])
        if entry is not None:
            assert gufunc is not None
            agree(fn, gufunc, name, entry, (rank, dims), annotation, reader)
        return _Read(rank, dims if dims is not None else entry, "explicit")
    if entry is not None:
        assert gufunc is not None
        agree(fn, gufunc, name, entry, None, annotation, reader)
        return _Read(len(entry), entry, "signature")
    if name in unresolved:
        raise _unresolved_error(fn, name, unresolved[name])
    try:
        rank = reader.rank(annotation)
    except (VariadicAnnotation, NoSingleRank) as e:
        raise _annotation_error(fn, name, annotation, e) from None
    if rank is None:
        return _Read(None, None, "none")
    return _Read(rank, dims_of_annotation(annotation), "annotation")


def read_spec(
    fn: Any,
    positional_ranks: tuple[object, ...],
    keyword_ranks: Mapping[str, object],
    reader: AnnotationReader,
    gufunc: str | Gufunc | None = None,
    check: bool = True,
) -> CallSpec:
    """Read `fn` once: its signature, resolved annotations, and each parameter's rank and
    named dims, from the explicit rank, the entry of `gufunc` (the `signature=` option) or the
    annotation, in that order (`_read_param`). Like-named dims, which calls compare, come from
    the same places; with `check`, names from annotations alone are left to jaxtyping."""
    target = _annotated_function(fn)
    _refuse_non_functions(fn, target)
    signature = _signature(fn)
    explicit = explicit_ranks(fn, signature, positional_ranks, keyword_ranks)
    globalns = getattr(target, "__globals__", {})
    annotations: dict[str, Any] = {}
    unresolved: dict[str, str] = {}
    wanted = {*signature.parameters, "return"}
    for name, annotation in (getattr(target, "__annotations__", None) or {}).items():
        if name not in wanted:  # `self` of a callable object's `__call__`, partial's bound args
            continue
        try:
            annotations[name] = reader.resolve(annotation, globalns)
        except Exception as e:  # noqa: BLE001 - NameError, SyntaxError...: reported if needed
            unresolved[name] = f"{type(e).__name__}: {e}"
    return spec_from_parameters(
        fn,
        signature.parameters.values(),
        explicit,
        _parse_gufunc(fn, gufunc),
        check,
        reader,
        signature.return_annotation,
        annotations,
        unresolved,
    )


def spec_from_parameters(
    fn: Any,
    parameters: Iterable[inspect.Parameter],
    explicit: Mapping[str, RankTree],
    gufunc: Gufunc | None,
    check: bool,
    reader: AnnotationReader,
    return_annotation: Any,  # `inspect.Signature.empty`: none
    annotations: Mapping[str, Any] = types.MappingProxyType({}),
    unresolved: Mapping[str, str] = types.MappingProxyType({}),
) -> CallSpec:
    """The spec of calls of `fn` with these parameters, explicit ranks (validated), signature
    and resolved annotations: what `read_spec` reads from a function, or what `vectorize` makes
    for one layout of a call (its parameters are the arguments of that call)."""
    signature = inspect.Signature(list(parameters), return_annotation=return_annotation)
    entries = {} if gufunc is None else signature_entries(fn, signature, explicit, gufunc)
    params = []
    dims: dict[str, tuple[ParamDims, str]] = {}
    for index, p in enumerate(signature.parameters.values()):
        read = _read_param(fn, p.name, explicit, entries, gufunc, annotations, unresolved, reader)
        params.append(ParamRank(p.name, index, p.kind, read.rank, read.source))
        if read.dims is not None:
            dims[p.name] = (read.dims, read.source)
    core = core_dims(dims, list(signature.parameters.values()), gufunc, check)
    return _layout(fn, signature, dict(annotations), dict(explicit), gufunc, core, tuple(params))


def _parse_gufunc(fn: Any, signature: str | Gufunc | None) -> Gufunc | None:
    if signature is None or isinstance(signature, Gufunc):
        return signature
    try:
        return parse_signature(signature)
    except (TypeError, ValueError) as e:
        raise signature_error(fn_label(fn), signature, e) from None


def _layout(
    fn: Any,
    signature: inspect.Signature,
    annotations: dict[str, Any],
    explicit: dict[str, RankTree],
    gufunc: Gufunc | None,
    core: CoreDims | None,
    params: tuple[ParamRank, ...],
) -> CallSpec:
    def of_kind(*kinds: inspect._ParameterKind) -> tuple[ParamRank, ...]:
        return tuple(p for p in params if p.kind in kinds)

    def default(p: ParamRank) -> Any:
        return signature.parameters[p.name].default

    def has_ranked_default(p: ParamRank) -> bool:
        return p.rank is not None and default(p) is not _P.empty and default(p) is not None

    positional = of_kind(_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
    required_positional = sum(default(p) is _P.empty for p in positional)
    positional_only = of_kind(_P.POSITIONAL_ONLY)
    padded = [p.index for p in positional_only if has_ranked_default(p)]
    padding = tuple(
        default(p) for p in positional_only[required_positional : max(padded, default=-1) + 1]
    )
    keyword_defaults = tuple(
        (p, default(p))
        for p in of_kind(_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)
        if has_ranked_default(p)
    )
    required_keyword_only = tuple(p for p in of_kind(_P.KEYWORD_ONLY) if default(p) is _P.empty)
    ranks = tuple(p.rank for p in positional)
    plain = (
        not required_keyword_only
        and not any(p.kind is _P.KEYWORD_ONLY for p, _ in keyword_defaults)
        and all(r is None or isinstance(r, int) for r in ranks)
    )
    var_positional = of_kind(_P.VAR_POSITIONAL)
    var_keyword = of_kind(_P.VAR_KEYWORD)
    return CallSpec(
        fn=fn,
        signature=signature,
        annotations=annotations,
        explicit=explicit,
        gufunc=gufunc,
        core=core,
        params=params,
        positional=positional,
        by_keyword={p.name: p for p in of_kind(_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)},
        var_positional=var_positional[0] if var_positional else None,
        var_keyword=var_keyword[0] if var_keyword else None,
        required_positional=required_positional,
        required_keyword_only=required_keyword_only,
        keyword_defaults=keyword_defaults,
        first_padded=required_positional,
        padding=padding,
        plain_arity=len(positional) if plain else None,
        plain_ranked=tuple((i, r) for i, r in enumerate(ranks) if isinstance(r, int))
        if plain
        else (),
    )

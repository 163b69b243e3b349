"""Rank specifications: validate what the user wrote and pin one rank to each parameter.

Everything here depends only on the decorated function's signature, so it runs once, when
decorating. Call-time code only looks the results up.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import jax

from ._errors import RankSpecError, fn_label

# A rank is `None` (not batched), an `int >= 0`, or a pytree of those (prefix semantics, like
# `jax.vmap`'s `in_axes`).
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
    source: str  # "explicit", "annotation" or "none"

    def label(self, key: int | str) -> str:
        """How messages name an argument bound to this parameter."""
        if self.kind is _P.VAR_POSITIONAL:
            return f"*{self.name}[{key}]"
        if self.kind is _P.VAR_KEYWORD:
            return f"**{self.name}[{key!r}]"
        return self.name


@dataclasses.dataclass(frozen=True)
class CallSpec:
    """Per-parameter ranks, laid out so that binding a call is a few dict lookups."""

    fn: Callable[..., Any]
    params: tuple[ParamRank, ...]
    positional: tuple[ParamRank, ...]  # parameters that positional arguments fill, in order
    by_keyword: Mapping[str, ParamRank]  # parameters a keyword argument may name
    var_positional: ParamRank | None
    var_keyword: ParamRank | None
    # Parameters without a default, checked before any work. Required positional parameters
    # always come first, so a call with at least that many positional arguments has them all.
    required_positional: int
    required_keyword_only: tuple[ParamRank, ...]
    # Ranked parameters (that a keyword can name) with a default: an unpassed default is
    # batched like a passed argument, as in `jax-autovmap`.
    ranked_defaults: tuple[tuple[ParamRank, Any], ...]

    @functools.cached_property
    def exact_call_ranks(self) -> tuple[int | None, ...] | None:
        """Per positional parameter, its rank if that is `None` or an int, for the fast check
        of calls that give every positional argument and nothing else (see `_call._has_batch_dims`);
        `None` when such calls still need the general path (pytree ranks, keyword-only
        parameters that are required or have ranked defaults)."""
        if self.required_keyword_only or any(
            p.kind is _P.KEYWORD_ONLY for p, _ in self.ranked_defaults
        ):
            return None
        ranks = tuple(p.rank for p in self.positional)
        if any(r is not None and not isinstance(r, int) for r in ranks):
            return None
        return ranks

    @property
    def any_ranked(self) -> bool:
        return any(p.rank is not None for p in self.params)


def _invalid_rank(fn: Callable[..., Any], name: str, rank: object, detail: str) -> RankSpecError:
    return RankSpecError(
        f"{fn_label(fn)}: the rank given for parameter `{name}` is {rank!r}, {detail}. A rank is "
        "an int >= 0 (the number of dimensions of one example), `None` (not batched), or a "
        "pytree of those matching the argument, like `jax.vmap`'s `in_axes`."
    )


def validate_rank(fn: Callable[..., Any], name: str, rank: object) -> RankTree:
    """Check one user-given rank; return it with every int leaf normalised to `int`."""
    if rank is None:
        return None
    if isinstance(rank, bool):
        raise _invalid_rank(fn, name, rank, "a bool; write 0 or 1 if you meant a rank")
    if isinstance(rank, numbers.Integral):
        if rank < 0:
            raise _invalid_rank(fn, name, rank, "negative")
        return int(rank)
    leaves, treedef = jax.tree_util.tree_flatten(rank, is_leaf=is_none)
    if jax.tree_util.treedef_is_leaf(treedef):  # `rank` is itself a leaf: a float, a str, ...
        raise _invalid_rank(fn, name, rank, f"of type `{type(rank).__name__}`")
    for leaf in leaves:
        if leaf is not None and (
            isinstance(leaf, bool) or not isinstance(leaf, numbers.Integral) or leaf < 0
        ):
            raise _invalid_rank(
                fn, name, rank, f"a pytree with the leaf {leaf!r}, which is not an int >= 0 or None"
            )
    return jax.tree_util.tree_unflatten(treedef, [None if r is None else int(r) for r in leaves])


def explicit_ranks(
    fn: Callable[..., Any], positional_ranks: tuple[object, ...], keyword_ranks: Mapping[str, object]
) -> dict[str, RankTree]:
    """The validated explicit rank of each parameter named, by name.

    Positional ranks fill the parameters in signature order (`self` included), as in
    `jax-autovmap`; keyword ranks name parameters.
    """
    parameters = list(_signature(fn).parameters)
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


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise RankSpecError(
            f"{fn_label(fn)}: cannot read the signature of {fn!r} ({e}); `auto_vmap` needs a "
            "Python function or a callable with an inspectable signature."
        ) from None


def build_call_spec(
    fn: Callable[..., Any], explicit: Mapping[str, RankTree], inferred: Mapping[str, RankTree]
) -> CallSpec:
    """One rank per parameter of `fn`: explicit ranks win over `inferred` ones (annotations)."""
    resolved = []
    defaults = {}
    parameters = _signature(fn).parameters.values()
    for index, p in enumerate(parameters):
        if p.name in explicit:
            rank, source = explicit[p.name], "explicit"
        elif inferred.get(p.name) is not None:
            rank, source = inferred[p.name], "annotation"
        else:
            rank, source = None, "none"
        resolved.append(ParamRank(p.name, index, p.kind, rank, source))
        defaults[p.name] = p.default

    def of_kind(*kinds: inspect._ParameterKind) -> tuple[ParamRank, ...]:
        return tuple(r for r in resolved if r.kind in kinds)

    var_positional = of_kind(_P.VAR_POSITIONAL)
    var_keyword = of_kind(_P.VAR_KEYWORD)
    return CallSpec(
        fn=fn,
        params=tuple(resolved),
        positional=of_kind(_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD),
        by_keyword={r.name: r for r in of_kind(_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)},
        var_positional=var_positional[0] if var_positional else None,
        var_keyword=var_keyword[0] if var_keyword else None,
        required_positional=sum(
            defaults[r.name] is _P.empty
            for r in of_kind(_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD)
        ),
        required_keyword_only=tuple(
            r for r in of_kind(_P.KEYWORD_ONLY) if defaults[r.name] is _P.empty
        ),
        ranked_defaults=tuple(
            (r, defaults[r.name])
            for r in of_kind(_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY)
            if r.rank is not None and defaults[r.name] not in (_P.empty, None)
        ),
    )

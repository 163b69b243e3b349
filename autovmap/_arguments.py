"""Call time, before any JAX work: bind arguments to parameter ranks and flatten them to leaves."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from ._annotations import FieldRanks
from ._errors import TreeStructureError, fn_label
from ._spec import CallSpec, ParamRank, RankTree, is_none
from ._traceback import hide_from_tracebacks

hide_from_tracebacks(__file__)

_P = inspect.Parameter


@dataclasses.dataclass(slots=True)
class RankedArgument:
    """One argument with a rank: its flattened leaves, their ranks, and how to rebuild it.

    A leaf of rank `None` (a subtree under a `None` in a pytree rank) is kept whole and
    passed through untouched.
    """

    key: int | str  # position in `args`, or name in `kwargs`
    value: Any
    param: ParamRank
    leaves: list[Any]
    leaf_ranks: list[int | None]
    rebuild: Callable[[list[Any]], Any]

    @property
    def rank(self) -> RankTree:
        return self.param.rank

    @property
    def label(self) -> str:
        return _label(self.param, self.key)

    def leaf_paths(self) -> list[str]:
        """`label` plus the key path of each leaf; only computed for error messages."""
        if isinstance(self.rank, (int, FieldRanks)):
            flat = jax.tree_util.tree_flatten_with_path(self.value)[0]
            return [self.label + jax.tree_util.keystr(p) for p, _ in flat]
        rank_paths = jax.tree_util.tree_flatten_with_path(self.rank, is_leaf=is_none)[0]
        rank_def: Any = jax.tree_util.tree_structure(self.rank, is_leaf=is_none)
        subtrees = rank_def.flatten_up_to(self.value)
        result = []
        for (rank_path, rank), subtree in zip(rank_paths, subtrees):
            prefix = self.label + jax.tree_util.keystr(rank_path)
            if rank is None:
                result.append(prefix)
            else:
                sub = jax.tree_util.tree_flatten_with_path(subtree)[0]
                result.extend(prefix + jax.tree_util.keystr(p) for p, _ in sub)
        return result


def _label(param: ParamRank, key: int | str) -> str:
    """How messages name an argument: `v`, `*args[1]`, `**kwargs['x']`."""
    if param.kind is _P.VAR_POSITIONAL:
        assert isinstance(key, int)
        return param.label(key - param.index)  # *args comes right after the positionals
    return param.label(key)


def _rank_at(rank: RankTree, path: tuple[Any, ...]) -> int | None:
    """The rank of the leaf at `path` under a `FieldRanks`: follow field names down."""
    for key in path:
        if not isinstance(rank, FieldRanks):
            break
        rank = dict(rank.ranks).get(getattr(key, "name", ""))
    return None if isinstance(rank, FieldRanks) else rank


def _flatten_fields(spec: CallSpec, key: int | str, value: Any, param: ParamRank) -> RankedArgument:
    rank = param.rank
    flat, treedef = jax.tree_util.tree_flatten_with_path(value)
    if jax.tree_util.treedef_is_leaf(treedef) and isinstance(value, rank.cls):
        label = _label(param, key)
        raise TreeStructureError(
            f"{fn_label(spec.fn)}: argument `{label}` is a `{rank.cls.__name__}`, whose "
            "annotated fields give it ranks, but it is not a JAX pytree, so its fields cannot "
            "be batched. Register the class with `jax.tree_util.register_dataclass` (or make "
            f"it an `equinox.Module`), or give `{label}` an explicit rank."
        )
    leaves = [leaf for _, leaf in flat]
    leaf_ranks = [_rank_at(rank, path) for path, _ in flat]
    return RankedArgument(key, value, param, leaves, leaf_ranks, _unflatten(treedef))


def _single_leaf(leaves: list[Any]) -> Any:
    return leaves[0]


def _unflatten(treedef: Any) -> Callable[[list[Any]], Any]:
    return functools.partial(jax.tree_util.tree_unflatten, treedef)


def _flatten(spec: CallSpec, key: int | str, value: Any, param: ParamRank) -> RankedArgument:
    rank = param.rank
    if isinstance(rank, int):
        if isinstance(value, (jax.Array, np.ndarray)):  # the common case, without tree_flatten
            return RankedArgument(key, value, param, [value], [rank], _single_leaf)
        leaves, treedef = jax.tree_util.tree_flatten(value)
        return RankedArgument(key, value, param, leaves, [rank] * len(leaves), _unflatten(treedef))
    if isinstance(rank, FieldRanks):
        return _flatten_fields(spec, key, value, param)
    rank_def: Any
    rank_leaves, rank_def = jax.tree_util.tree_flatten(rank, is_leaf=is_none)
    try:
        subtrees = rank_def.flatten_up_to(value)
    except (ValueError, TypeError):
        label = _label(param, key)
        got = jax.tree_util.tree_structure(value)
        raise TreeStructureError(
            f"{fn_label(spec.fn)}: argument `{label}` does not have the pytree structure of its "
            f"rank {rank!r}.\n  expected: {rank_def}\n  got:      {got}\nPass `{label}` with "
            "that structure, or give it a single int rank, which applies to every leaf."
        ) from None
    leaves = []
    leaf_ranks: list[int | None] = []
    subdefs: list[Any] = []  # a treedef per int rank, None where the rank is None
    for sub_rank, subtree in zip(rank_leaves, subtrees):
        if sub_rank is None:
            leaves.append(subtree)
            leaf_ranks.append(None)
            subdefs.append(None)
        else:
            sub_leaves, sub_def = jax.tree_util.tree_flatten(subtree)
            leaves.extend(sub_leaves)
            leaf_ranks.extend([sub_rank] * len(sub_leaves))
            subdefs.append(sub_def)

    def rebuild(new_leaves: list[Any]) -> Any:
        it = iter(new_leaves)
        return rank_def.unflatten(
            [next(it) if d is None else d.unflatten([next(it) for _ in range(d.num_leaves)])
             for d in subdefs]
        )

    return RankedArgument(key, value, param, leaves, leaf_ranks, rebuild)


def _binding_error(spec: CallSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TypeError:
    try:
        inspect.signature(spec.fn).bind(*args, **kwargs)
    except TypeError as e:
        return TypeError(f"{fn_label(spec.fn)}: {e}")
    return TypeError(f"{fn_label(spec.fn)}: these arguments do not fit the signature")


def _given(param: ParamRank, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether a call supplies `param` (a positional-only one cannot come by keyword)."""
    if param.kind is _P.POSITIONAL_ONLY:
        return param.index < len(args)
    if param.kind is _P.POSITIONAL_OR_KEYWORD and param.index < len(args):
        return True
    return param.name in kwargs


def bind_ranked(
    spec: CallSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> list[RankedArgument]:
    """The ranked arguments of a call, flattened. `None` values and unranked ones are skipped:
    they reach the function as the very same objects. Calls that do not fit the signature
    raise the usual `TypeError` here, before any batching."""
    ranked = []
    n_positional = len(spec.positional)
    param: ParamRank | None
    for i, value in enumerate(args):
        if i < n_positional:
            param = spec.positional[i]
        elif spec.var_positional is not None:
            param = spec.var_positional
        else:
            raise _binding_error(spec, args, kwargs)
        if param.rank is not None and value is not None:
            ranked.append(_flatten(spec, i, value, param))
    for name, value in kwargs.items():
        param = spec.by_keyword.get(name)
        if param is None:
            param = spec.var_keyword
            if param is None:
                raise _binding_error(spec, args, kwargs)
        elif param.kind is _P.POSITIONAL_OR_KEYWORD and param.index < len(args):
            # given both positionally and by keyword
            raise _binding_error(spec, args, kwargs)
        if param.rank is not None and value is not None:
            ranked.append(_flatten(spec, name, value, param))
    # Required positional parameters come first: only those past `args` can be missing.
    missing_positional = spec.positional[len(args) : spec.required_positional]
    for param in (*missing_positional, *spec.required_keyword_only):
        if not _given(param, args, kwargs):
            raise _binding_error(spec, args, kwargs)
    for param, default in spec.ranked_defaults:
        if not _given(param, args, kwargs):  # passed on by keyword, batched if it has batch dims
            ranked.append(_flatten(spec, param.name, default, param))
    return ranked

"""Arguments <-> ranked leaves: bind a call to the parameters, flatten the ranked arguments to
the array leaves that carry a rank, and rebuild the arguments from new leaves.

The ranked leaves of a call, in argument order, are the one index space the plan and the run
work in. Everything else (unranked arguments, `None`, leaves under a `None` rank, non-array
leaves) stays where it is and reaches the function as the very same object.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import operator
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from ._annotations import EachRank, FieldRanks, leaf_rank as pick_rank, rank_at
from ._arrays import ARRAY_TYPES, PYTHON_SCALARS, all_arrays, is_array_type, shape_of
from ._errors import (
    AutoVmapError,
    RankTooLargeError,
    TreeStructureError,
    fn_label,
    hide_from_tracebacks,
)
from ._plan import Shape
from ._spec import CallSpec, ParamRank, is_none

hide_from_tracebacks(__file__)

_P = inspect.Parameter
_SHAPE = operator.attrgetter("shape")
_OWN_LEAVES = (np.ndarray, *PYTHON_SCALARS)  # besides JAX arrays: values that are one leaf


@dataclasses.dataclass(slots=True)
class RankedArgument:
    """One ranked argument: where it goes in the call, and its leaves.

    `flat` holds every leaf of the argument (a subtree under a `None` rank counts as one
    leaf); `slots[i]` is the position in `flat` of the call's ranked leaf `start + i`.
    """

    key: int | str  # position in `args`, or name in `kwargs`
    param: ParamRank
    value: Any
    flat: list[Any]
    slots: list[int]
    start: int
    unflatten: Callable[[list[Any]], Any] | None  # None: the value is its own single leaf

    @property
    def label(self) -> str:
        return self.param.label(self.key)

    def rebuild(self, leaves: list[Any]) -> Any:
        if self.unflatten is None:  # the value is its own single, ranked leaf
            return leaves[self.start]
        if len(self.slots) == len(self.flat):  # every leaf is ranked: a slice, in order
            return self.unflatten(leaves[self.start : self.start + len(self.slots)])
        flat = list(self.flat)
        for i, slot in enumerate(self.slots):
            flat[slot] = leaves[self.start + i]
        return self.unflatten(flat)

    def leaf_labels(self) -> list[str]:
        """The label and pytree path of each ranked leaf; only computed for messages."""
        if self.unflatten is None:
            return [self.label]
        rank = self.param.rank
        if isinstance(rank, int) or isinstance(rank, (FieldRanks, EachRank)):
            paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(self.value)[0]]
        else:  # a pytree rank: subtrees under `None` are one leaf each
            paths = []
            rank_paths = jax.tree_util.tree_flatten_with_path(rank, is_leaf=is_none)[0]
            rank_def: Any = jax.tree_util.tree_structure(rank, is_leaf=is_none)
            for (rank_path, sub_rank), subtree in zip(
                rank_paths, rank_def.flatten_up_to(self.value)
            ):
                if sub_rank is None:
                    paths.append(rank_path)
                else:
                    flat = jax.tree_util.tree_flatten_with_path(subtree)[0]
                    paths.extend(rank_path + p for p, _ in flat)
        return [self.label + jax.tree_util.keystr(paths[slot]) for slot in self.slots]


@dataclasses.dataclass(slots=True)
class BoundCall:
    """A call bound to the parameters, with its ranked leaves in one list.

    A call of positional JAX arrays only (`bind_call`'s plain walk) has one ranked leaf per
    ranked argument: it says where each came from (`positions`), and its `arguments` are made
    only if something asks (messages, named dims). Each object made costs a call about a
    microsecond once JAX's own work has pushed this code out of the CPU's caches.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    leaves: list[Any]  # the ranked array leaves, in argument order
    ranks: list[int]  # the rank of each
    # Per ranked leaf, `shape[:ndim - rank]`, read in the same walk as the leaves; `()` for a
    # leaf whose ndim is below its rank, the first of which is `short` (`None`: none is).
    batch_shapes: list[Shape]
    short: int | None
    bound_arguments: list[RankedArgument] | None  # `None`: a plain call, made from `positions`
    positions: list[int] | None = None  # plain: the position in `args` of each ranked leaf
    params: tuple[ParamRank, ...] = ()  # plain: the parameters positional arguments fill

    @property
    def arguments(self) -> list[RankedArgument]:
        """The ranked arguments, in order."""
        if self.bound_arguments is None:
            assert self.positions is not None
            self.bound_arguments = [
                RankedArgument(i, self.params[i], self.args[i], [self.args[i]], [0], start, None)
                for start, i in enumerate(self.positions)
            ]
        return self.bound_arguments

    def rebuild(self, leaves: list[Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments with the ranked leaves replaced by `leaves`."""
        args = list(self.args)
        if self.bound_arguments is None:  # a plain call: each leaf is its argument
            assert self.positions is not None
            for i, leaf in zip(self.positions, leaves):
                args[i] = leaf
            return tuple(args), self.kwargs
        kwargs = dict(self.kwargs) if self.kwargs else {}
        for argument in self.bound_arguments:
            if argument.unflatten is None:  # its own single ranked leaf (`rebuild`, inlined)
                value = leaves[argument.start]
            else:
                value = argument.rebuild(leaves)
            if isinstance(argument.key, int):
                args[argument.key] = value
            else:
                kwargs[argument.key] = value
        return tuple(args), kwargs

    def leaf_labels(self) -> list[str]:
        return [label for argument in self.arguments for label in argument.leaf_labels()]


def _flatten(
    spec: CallSpec, key: int | str, value: Any, param: ParamRank
) -> tuple[list[Any], int | list[int | None], Callable[[list[Any]], Any] | None]:
    """Every leaf of one argument with its rank (one int when every leaf has it), and how to
    put the leaves back together."""
    rank = param.rank
    if isinstance(rank, int):
        if is_array_type(type(value)) or isinstance(value, _OWN_LEAVES):
            return [value], rank, None  # the common case, without tree_flatten
        leaves, treedef = jax.tree_util.tree_flatten(value)
        if rank > 0 and _is_list_of_numbers(value):
            raise _refuse_list_of_numbers(spec, key, value, param)
        return leaves, rank, functools.partial(jax.tree_util.tree_unflatten, treedef)
    if isinstance(rank, (FieldRanks, EachRank)):
        with_paths, treedef = jax.tree_util.tree_flatten_with_path(value)
        # An unregistered class is one leaf at the root; a registered one with a single array
        # field is one leaf below it.
        if (
            isinstance(rank, FieldRanks)
            and len(with_paths) == 1
            and not with_paths[0][0]
            and isinstance(value, rank.cls)
        ):
            label = param.label(key)
            mismatch = _field_off_rank(rank, value)
            if mismatch is None:  # nothing in it to batch: it passes through whole
                return [value], [None], None
            field, shape, field_rank = mismatch
            if len(shape) < field_rank:
                raise RankTooLargeError(
                    f"{fn_label(spec.fn)}: field `{label}.{field}` has shape {shape} "
                    f"({len(shape)} dims), but its annotation gives it rank {field_rank}. Pass "
                    "it with the dims of one example."
                )
            raise TreeStructureError(
                f"{fn_label(spec.fn)}: argument `{label}` is a `{rank.cls.__name__}`, whose "
                f"annotated fields give it ranks, and its field `{label}.{field}` has "
                "batch dims, but the class is not a JAX pytree, so its fields cannot be "
                "batched. Register the class with `jax.tree_util.register_dataclass` "
                f"(or make it an `equinox.Module`), or give `{label}` an explicit rank."
            )
        leaf_ranks = [rank_at(rank, path) for path, _ in with_paths]
        unflatten = functools.partial(jax.tree_util.tree_unflatten, treedef)
        return [leaf for _, leaf in with_paths], leaf_ranks, unflatten
    rank_def: Any
    rank_leaves, rank_def = jax.tree_util.tree_flatten(rank, is_leaf=is_none)
    try:
        subtrees = rank_def.flatten_up_to(value)
    except (ValueError, TypeError):
        label = param.label(key)
        raise TreeStructureError(
            f"{fn_label(spec.fn)}: argument `{label}` does not have the pytree structure of its "
            f"rank {rank!r}.\n  expected: {rank_def}\n  got:      "
            f"{jax.tree_util.tree_structure(value)}\nPass `{label}` with that structure, or give "
            "it a single int rank, which applies to every leaf."
        ) from None
    flat: list[Any] = []
    leaf_ranks = []
    subdefs: list[Any] = []  # a treedef per int rank, None where the rank is None
    for sub_rank, subtree in zip(rank_leaves, subtrees):
        if sub_rank is None:
            flat.append(subtree)
            leaf_ranks.append(None)
            subdefs.append(None)
        else:
            sub_leaves, sub_def = jax.tree_util.tree_flatten(subtree)
            flat.extend(sub_leaves)
            leaf_ranks.extend([sub_rank] * len(sub_leaves))
            subdefs.append(sub_def)

    def unflatten_pytree_rank(new_flat: list[Any]) -> Any:
        it = iter(new_flat)
        return rank_def.unflatten(
            [
                next(it) if d is None else d.unflatten([next(it) for _ in range(d.num_leaves)])
                for d in subdefs
            ]
        )

    return flat, leaf_ranks, unflatten_pytree_rank


def _field_off_rank(rank: FieldRanks, value: Any) -> tuple[str, Shape, int] | None:
    """The first field (a dotted path) of an unregistered dataclass `value` holding an array
    whose dims differ from its field's rank (more: it would have to be batched; fewer: it is
    not one example), with that array's shape and the rank."""
    for field in dataclasses.fields(value) if dataclasses.is_dataclass(value) else ():
        field_rank = rank.ranks.get(field.name)
        field_value = getattr(value, field.name, None)
        if isinstance(field_rank, FieldRanks) and isinstance(field_value, field_rank.cls):
            inner = _field_off_rank(field_rank, field_value)
            if inner is not None:
                return f"{field.name}.{inner[0]}", inner[1], inner[2]
        elif field_rank is not None:
            for path, leaf in jax.tree_util.tree_flatten_with_path(field_value)[0]:
                leaf_rank = rank_at(field_rank, path)
                shape = shape_of(leaf)
                if isinstance(leaf_rank, int) and shape is not None and len(shape) != leaf_rank:
                    return field.name + jax.tree_util.keystr(path), tuple(shape), leaf_rank
    return None


def _is_list_of_numbers(value: Any) -> bool:
    """A list or tuple, nested or not, of Python numbers only: what `jnp.asarray` would make an
    array of, and what `auto_vmap`, like `jax.vmap`, takes as a pytree of rank-0 leaves."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    leaves = jax.tree_util.tree_leaves(value)
    return bool(leaves) and all(isinstance(leaf, PYTHON_SCALARS) for leaf in leaves)


def _list_of_numbers(label: str, value: Any) -> str:
    n = len(jax.tree_util.tree_leaves(value))
    return f"`{label}` is a {type(value).__name__} of {n} Python numbers"


def _refuse_list_of_numbers(
    spec: CallSpec, key: int | str, value: Any, param: ParamRank
) -> RankTooLargeError:
    label = param.label(key)
    return RankTooLargeError(
        f"{fn_label(spec.fn)}: argument {_list_of_numbers(label, value)}, but its rank is "
        f"{param.rank!r}. A list is a pytree to `auto_vmap` (as to `jax.vmap`): each number would "
        f"be one leaf of rank 0. Pass an array, `jnp.asarray({label})`, to batch over its "
        "elements (`autovmap.vectorize`, like `jnp.vectorize`, converts lists itself)."
    )


def explain_failure(
    error: Exception, spec: CallSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Exception | None:
    """On the way out of a failed call (the error path only), for an error that is not ours:
    a clear error to raise in its place, or `None` to raise it as it is, perhaps with a note.

    JAX cannot take an object, string or datetime array: rather than its "Error interpreting
    argument", name the argument. A function that failed while a ranked argument was a list of
    Python numbers got that list as a list: say so."""
    if isinstance(error, AutoVmapError):
        return None
    if isinstance(error, TypeError):
        try:
            bound = bind(spec, args, kwargs)
        except Exception:  # the call did not bind: that is the error, as it stands
            return None

        for label, leaf in zip(bound.leaf_labels(), bound.leaves):
            if isinstance(leaf, (np.ndarray, np.generic)) and leaf.dtype.kind in "OUSVMm":
                return TreeStructureError(
                    f"{fn_label(spec.fn)}: argument `{label}` is an array of dtype {leaf.dtype} "
                    f"and shape {leaf.shape}, which JAX cannot take: only arrays of numbers and "
                    f"booleans can be batched. Convert it to numbers, or give `{label}` the rank "
                    "`None` to pass it through unbatched."
                )
    given: list[tuple[int | str, Any, ParamRank | None]] = [
        (i, value, spec.positional[i] if i < len(spec.positional) else spec.var_positional)
        for i, value in enumerate(args)
    ]
    given += [(k, v, spec.by_keyword.get(k, spec.var_keyword)) for k, v in kwargs.items()]
    for key, value, param in given:
        if param is not None and param.rank is not None and _is_list_of_numbers(value):
            label, kind = param.label(key), type(value).__name__
            note = (
                f"Note: {_list_of_numbers(label, value)}, so the function got a {kind}: "
                f"`auto_vmap`, like `jax.vmap`, takes a {kind} as a pytree whose leaves (the "
                f"numbers) have rank {param.rank!r}. To batch over its elements, pass "
                f"`jnp.asarray({label})`."
            )
            if note not in getattr(error, "__notes__", ()):
                error.add_note(note)
    return None


def _refuse_no_arrays(
    spec: CallSpec, key: int | str, value: Any, param: ParamRank
) -> TreeStructureError:
    label = param.label(key)
    hint = ""
    if param.index == 0 and param.name in ("self", "cls") and param.source == "explicit":
        hint = (
            f" Positional ranks count `{param.name}`: `@auto_vmap(1)` on `def f(self, x)` ranks "
            "`self`. Give `None` first (`@auto_vmap(None, 1)`) or rank by name (`x=1`)."
        )
    return TreeStructureError(
        f"{fn_label(spec.fn)}: argument `{label}` has rank {param.rank!r} but holds no array: "
        f"it is a `{type(value).__name__}`.{hint} Pass an array (or a pytree of arrays), or "
        f"give `{param.name}` the rank `None` to pass it through unbatched."
    )


def _binding_error(spec: CallSpec, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> TypeError:
    try:
        spec.signature.bind(*args, **kwargs)
    except TypeError as e:
        return TypeError(f"{fn_label(spec.fn)}: {e}")
    return TypeError(f"{fn_label(spec.fn)}: these arguments do not fit the signature")


def _given(param: ParamRank, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
    """Whether a call supplies `param` (a positional-only one cannot come by keyword)."""
    if param.kind is not _P.KEYWORD_ONLY and param.index < len(args):
        return True
    return param.kind is not _P.POSITIONAL_ONLY and param.name in kwargs


def bind(spec: CallSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BoundCall:
    """Bind a call and collect its ranked leaves. Calls that do not fit the signature raise the
    usual `TypeError` here, naming the function, before any batching."""
    if spec.padding and spec.first_padded <= len(args) < spec.first_padded + len(spec.padding):
        args = args + spec.padding[len(args) - spec.first_padded :]
    found: list[tuple[int | str, Any, ParamRank]] = []
    n_positional = len(spec.positional)
    for i, value in enumerate(args):
        if i < n_positional:
            param = spec.positional[i]
        elif spec.var_positional is not None:
            param = spec.var_positional
        else:
            raise _binding_error(spec, args, kwargs)
        if param.rank is not None and value is not None:
            found.append((i, value, param))
    for name, value in kwargs.items():
        keyword_param = spec.by_keyword.get(name)
        if keyword_param is None:
            keyword_param = spec.var_keyword
            if keyword_param is None:
                raise _binding_error(spec, args, kwargs)
        elif keyword_param.kind is _P.POSITIONAL_OR_KEYWORD and keyword_param.index < len(args):
            raise _binding_error(spec, args, kwargs)  # given both positionally and by keyword
        if keyword_param.rank is not None and value is not None:
            found.append((name, value, keyword_param))
    if len(args) < spec.required_positional or spec.required_keyword_only:
        missing_positional = spec.positional[len(args) : spec.required_positional]
        for param in (*missing_positional, *spec.required_keyword_only):
            if not _given(param, args, kwargs):
                raise _binding_error(spec, args, kwargs)
    if spec.keyword_defaults:
        defaults = [(p, d) for p, d in spec.keyword_defaults if not _given(p, args, kwargs)]
        if defaults:
            kwargs = {**kwargs, **{p.name: d for p, d in defaults}}
            found.extend((p.name, d, p) for p, d in defaults)
    arguments = []
    leaves: list[Any] = []
    ranks: list[int] = []
    batch_shapes: list[Shape] = []
    short = None
    for key, value, param in found:
        flat, flat_ranks, unflatten = _flatten(spec, key, value, param)
        start = len(leaves)
        if isinstance(flat_ranks, int) and all_arrays(flat):
            # One rank for every leaf, each a JAX array (the common pytree): whole-list steps.
            rank = flat_ranks
            shapes = list(map(_SHAPE, flat))  # `map`, not comprehensions: no call per list
            slots = list(range(len(flat)))
            leaves += flat
            ranks += [rank] * len(flat)
            if not rank:
                batch_shapes += shapes
            elif not shapes or min(map(len, shapes)) >= rank:
                batch_shapes += map(operator.itemgetter(slice(-rank)), shapes)
            else:  # a leaf below its rank: `plan` reports the first
                batch_shapes += [shape[: max(len(shape) - rank, 0)] for shape in shapes]
                if short is None:
                    short = start + [len(shape) < rank for shape in shapes].index(True)
        else:
            if isinstance(flat_ranks, int):
                flat_ranks = [flat_ranks] * len(flat)
            slots = []
            for slot, (leaf, leaf_rank) in enumerate(zip(flat, flat_ranks)):
                if leaf_rank is None:
                    continue
                shape = shape_of(leaf)
                if shape is None:
                    continue
                if leaf_rank.__class__ is not int:  # a union whose member the leaf's dtype picks
                    leaf_rank = pick_rank(leaf_rank, leaf, spec.fn, param.label(key))
                slots.append(slot)
                if len(shape) < leaf_rank and short is None:
                    short = len(leaves)
                leaves.append(leaf)
                ranks.append(leaf_rank)
                extra = len(shape) - leaf_rank  # the number of batch dims, if not negative
                batch_shapes.append(shape[:extra] if extra >= 0 else ())
            if not slots and param.source == "explicit" and any(r is not None for r in flat_ranks):
                raise _refuse_no_arrays(spec, key, value, param)
        if slots:
            arguments.append(RankedArgument(key, param, value, flat, slots, start, unflatten))
    return BoundCall(args, kwargs, leaves, ranks, batch_shapes, short, arguments)


def bind_call(spec: CallSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BoundCall | None:
    """`bind`, in one walk of the arguments, or `None` for a call that certainly needs no
    batching and no conversion: every positional argument given and nothing else, each `None`,
    unranked, or a JAX array of exactly its rank (the call then runs as it is).

    A call giving exactly the positional arguments of a function whose ranks are all ints (or
    `None`), each a JAX array (or `None`), is walked here; anything else (keywords, pytrees,
    NumPy arrays, Python scalars, a leaf below its rank) by `bind`, which also explains what
    does not fit. One plain loop, in one function: on Python 3.11 every comprehension or helper
    is one more call on every call."""
    if kwargs or len(args) != spec.plain_arity:
        return bind(spec, args, kwargs)
    # One walk. Unbatched calls only check: nothing is made until a leaf has batch dims (or
    # is of an array type not seen before); then the arrays before it (each of exactly its
    # rank) are collected, and every one after it.
    collected: tuple[list[Any], list[int], list[Shape], list[int]] | None = None
    for i, rank in spec.plain_ranked:
        value = args[i]
        if value is None:
            continue
        is_array = ARRAY_TYPES.get(type(value))  # `is_array_type`, inlined
        if is_array and collected is None and len(value.shape) == rank:
            continue  # a JAX array of exactly its rank: the whole of an unbatched call's walk
        if is_array is None:
            is_array = is_array_type(type(value))
        if not is_array:
            return bind(spec, args, kwargs)  # NumPy arrays, Python scalars, pytrees, tracers
        shape = value.shape
        if len(shape) < rank:
            return bind(spec, args, kwargs)  # below its rank: `bind` and `plan` explain
        if collected is None:
            if len(shape) == rank:
                continue  # (an array type seen for the first time)
            collected = [], [], [], []
            for j, earlier in spec.plain_ranked:
                if j == i:
                    break
                if args[j] is not None:
                    collected[0].append(args[j])
                    collected[1].append(earlier)
                    collected[2].append(())
                    collected[3].append(j)
        leaves, ranks, batch_shapes, positions = collected
        leaves.append(value)
        ranks.append(rank)
        batch_shapes.append(shape[: len(shape) - rank])
        positions.append(i)
    if collected is None:
        return None
    leaves, ranks, batch_shapes, positions = collected
    return BoundCall(
        args, kwargs, leaves, ranks, batch_shapes, None, None, positions, spec.positional
    )

"""`autovmap.vectorize`: a drop-in for `jnp.vectorize`, run by `auto_vmap`'s core.

`jnp.vectorize` matches the signature's inputs to the *positional arguments of each call*
(after taking out `excluded` ones), so the ranks depend on the call, not on the function's
parameters. Each layout of a call (how many positional arguments, which keywords) therefore
gets its own `BatchedCall`, made once and cached, from a spec built from a parameter list
(`spec_from_parameters`): one parameter per argument of that layout, named after `pyfunc`'s
own parameters, with the excluded ones ranked `None` and the others given their entries of the
signature. The call goes to `pyfunc` itself, so the excluded arguments reach it untouched. The
core then binds, checks, plans and runs the call as for any auto-vmapped function: size-1 batch
dims are closed over rather than copied, eager batch dims are merged, and the named core dims
are compared before `jax.vmap` runs. Per call, only what `jnp.vectorize` does besides remains:
`jnp.asarray` of the inputs, `None` where an input has core dims, and rank promotion.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ._annotations import AnnotationReader
from ._arrays import ARRAY_TYPES
from ._bind import bind
from ._check import invoker
from ._decorator import BatchedCall
from ._errors import (
    BatchShapeError,
    BroadcastError,
    OptionError,
    RankSpecError,
    hide_from_tracebacks,
    tidy_traceback,
)
from ._options import OPTION_NAMES, Options
from ._plan import BoundedCache
from ._signature import ArgDims, Gufunc, fmt_dims, parse_signature, signature_error
from ._spec import spec_from_parameters

hide_from_tracebacks(__file__)

_P = inspect.Parameter
_LAYOUTS_KEPT = 256  # distinct call layouts kept per vectorized function
# Options `auto_vmap` cannot apply to a `vectorize` function: its signature is `vectorize`'s.
_NOT_APPLICABLE = ("check", "signature")
_NO_RETURN = inspect.Signature.empty  # a layout's spec has no return annotation


def _rank_promotion() -> str:
    """The `jax_numpy_rank_promotion` setting in effect (context managers included); read as
    jax documents it, `jax.config.jax_numpy_rank_promotion`, which jax's stubs do not declare."""
    return str(getattr(jax.config, "jax_numpy_rank_promotion"))  # noqa: B009


class _Layout(NamedTuple):
    """What one layout of a call needs besides its `BatchedCall`.

    `inputs`: the arguments that fill a signature input (or, with no signature, every positional
    one), which are converted with `jnp.asarray`: where each is (a position in `args` or a name
    in `kwargs`), its name for messages, and its core dims. `batched`: every argument that is not
    excluded, with its rank, for the rank-promotion check.
    """

    call: BatchedCall
    inputs: tuple[tuple[int | str, str, ArgDims], ...]
    batched: tuple[tuple[int | str, str, int], ...]


def _name_of(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return str(name).rpartition("<locals>.")[2]


def _labelled(pyfunc: Callable[..., Any], label: str) -> Callable[..., Any]:
    """`pyfunc` itself, called as it is, named `label` by messages (`fn_label`)."""
    labelled = functools.partial(pyfunc)
    labelled.__autovmap_label__ = label  # type: ignore[attr-defined]
    return labelled


class _Vectorized:
    """The record behind a `vectorize` function (its `__autovmap__`): picks the `BatchedCall`
    of each call's layout."""

    def __init__(
        self,
        pyfunc: Callable[..., Any],
        excluded: Collection[int | str],
        signature: str | None,
        options: Options,
    ) -> None:
        self.pyfunc = pyfunc
        self.excluded = excluded
        self.signature = signature
        self.options = options  # `check` is off: `jnp.vectorize` checks no annotations
        self.label = f"`vectorize({_name_of(pyfunc)})`"
        self.gufunc: Gufunc | None = None
        if signature is not None:
            try:
                self.gufunc = parse_signature(signature)
            except (TypeError, ValueError) as e:
                raise signature_error(self.label, signature, e) from None
        self.function = _labelled(pyfunc, self.label)  # what each layout's spec calls
        try:
            params = list(inspect.signature(pyfunc).parameters.values())
        except (TypeError, ValueError):  # a builtin without one: positions only
            params = None
        # `pyfunc`'s own parameters, unranked: each layout is bound against them once, so a
        # call that does not fit `pyfunc` is refused as `auto_vmap` refuses one.
        self.own_spec = (
            None
            if params is None
            else spec_from_parameters(
                self.function, params, {}, None, False, AnnotationReader(None), _NO_RETURN
            )
        )
        params = params or []
        positional = []
        for p in params:
            if p.kind not in (_P.POSITIONAL_ONLY, _P.POSITIONAL_OR_KEYWORD):
                break
            positional.append(p.name)
        self.positional_names = positional
        # `excluded` names a parameter however it is passed: an int excludes the keyword of
        # the parameter at that position too, a name the position of that parameter.
        ints = {e for e in excluded if isinstance(e, int)}
        names = {e for e in excluded if isinstance(e, str)}
        self.excluded_positions = frozenset(
            ints | {i for i, n in enumerate(positional) if n in names}
        )
        self.excluded_names = frozenset(
            names | {positional[i] for i in ints if i < len(positional)}
        )
        self.layouts = BoundedCache(_LAYOUTS_KEPT)

    def _slot(self, position: int) -> int:
        """The signature input a positional argument at `position` fills."""
        return position - sum(1 for e in self.excluded_positions if e < position)

    def _entry(self, slot: int) -> ArgDims | None:
        """The core dims of signature input `slot`; `()` with no signature, `None` past its
        inputs."""
        if self.gufunc is None:
            return ()
        return self.gufunc.inputs[slot] if slot < len(self.gufunc.inputs) else None

    def layout(self, n_args: int, keyword_names: tuple[str, ...]) -> _Layout:
        """The `BatchedCall` (and the rest) for calls with `n_args` positional arguments and
        these keywords; raises `TypeError` for a call that does not fit."""
        params: list[inspect.Parameter] = []
        explicit: dict[str, None] = {}  # the excluded arguments
        entries: list[ArgDims] = []  # the signature entries of the others, in order
        inputs: list[tuple[int | str, str, ArgDims]] = []
        batched: list[tuple[int | str, str, int]] = []
        filled: set[int] = set()  # the signature inputs the call fills

        def add(key: int | str, name: str, entry: ArgDims, is_input: bool) -> None:
            kind = _P.POSITIONAL_ONLY if isinstance(key, int) else _P.KEYWORD_ONLY
            params.append(_P(name, kind))
            entries.append(entry)
            batched.append((key, name, len(entry)))
            if is_input:
                inputs.append((key, name, entry))

        taken = set(keyword_names)
        for i in range(n_args):
            name = self.positional_names[i] if i < len(self.positional_names) else f"arg{i}"
            while name in taken:  # an unnamed position must not shadow a keyword
                name += "_"
            taken.add(name)
            if i in self.excluded_positions:
                params.append(_P(name, _P.POSITIONAL_ONLY))
                explicit[name] = None
                continue
            entry = self._entry(self._slot(i))
            if entry is None:
                raise self._count_error(n_args, keyword_names)
            filled.add(self._slot(i))
            add(i, name, entry, True)
        by_slot: list[tuple[int, str, ArgDims | None]] = []
        others = []
        for name in keyword_names:
            if name in self.excluded_names:
                params.append(_P(name, _P.KEYWORD_ONLY))
                explicit[name] = None
            elif name in self.positional_names:  # a positional parameter passed by keyword
                position = self.positional_names.index(name)
                if position < n_args:
                    raise TypeError(f"{self.label}: got multiple values for argument `{name}`")
                slot = self._slot(position)
                by_slot.append((slot, name, self._entry(slot)))
            else:
                others.append(name)
        for slot, name, slot_entry in sorted(by_slot):  # entries go in order
            if slot_entry is not None:
                filled.add(slot)
            add(name, name, slot_entry or (), True)
        for name in others:  # keywords of no positional parameter: rank 0, passed as they are
            add(name, name, (), False)
        if self.gufunc is not None and filled != set(range(len(self.gufunc.inputs))):
            raise self._count_error(n_args, keyword_names)
        if self.own_spec is not None:  # the call must fit `pyfunc` itself
            bind(self.own_spec, (None,) * n_args, dict.fromkeys(keyword_names))
        outputs = None if self.gufunc is None else self.gufunc.outputs
        text = None if self.gufunc is None else self.gufunc.text
        gufunc = Gufunc(tuple(entries), outputs, text, skips_self=False)
        # No annotations: `jnp.vectorize` checks none, and the signature gives every rank.
        spec = spec_from_parameters(
            self.function, params, explicit, gufunc, False, AnnotationReader(None), _NO_RETURN
        )
        call = BatchedCall(spec, self.options, invoker(spec, check=False))
        return self.layouts.put(
            (n_args, keyword_names), _Layout(call, tuple(inputs), tuple(batched))
        )

    def redecorate(
        self,
        positional_ranks: tuple[Any, ...],
        keyword_ranks: dict[str, Any],
        options: dict[str, Any],
    ) -> Callable[..., Any]:
        """`auto_vmap(...)` applied to this `vectorize` function: a new one with the options
        that apply to it (`chunk_size`, `axis_name`, `spmd_axis_name`; `check=False`, which it
        has already). Ranks, a signature or `check=True` are refused: the signature given to
        `vectorize` ranks the arguments, and no annotations are checked."""
        given = [repr(r) for r in positional_ranks] + [f"{k}=..." for k in keyword_ranks]
        if given:
            raise RankSpecError(
                f"{self.label}: `auto_vmap({', '.join(given)})` gives ranks to a function made "
                "by `vectorize`, whose `signature` ranks its arguments. Change the signature "
                "given to `vectorize`, or apply `auto_vmap` to the original function instead."
            )
        refused = [
            name
            for name, value in options.items()
            if name == "signature" or (name == "check" and value)
        ]
        if refused:
            applicable = ", ".join(f"`{n}`" for n in OPTION_NAMES if n not in _NOT_APPLICABLE)
            raise OptionError(
                f"{self.label}: `auto_vmap({refused[0]}=...)` does not apply to a function made "
                "by `vectorize`: give the signature to `vectorize`, which checks no annotations "
                f"(use `auto_vmap` on the original function for those). These apply: "
                f"{applicable}, and `check=False`."
            )
        merged = dataclasses.replace(self.options, **options)
        return _vectorized_function(_Vectorized(self.pyfunc, self.excluded, self.signature, merged))

    def _count_error(self, n_args: int, keyword_names: tuple[str, ...]) -> TypeError:
        assert self.gufunc is not None
        excluded = sum(1 for e in self.excluded_positions if e < n_args)
        given = n_args - excluded
        by_keyword = [k for k in keyword_names if k in self.positional_names]
        keywords = ""
        if by_keyword:
            keywords = f" and {', '.join(f'`{k}`' for k in by_keyword)} by keyword"
        n_inputs = len(self.gufunc.inputs)
        inputs = f"{n_inputs} input" + ("s" if n_inputs != 1 else "")
        return TypeError(
            f"{self.label}: wrong number of positional arguments: `signature="
            f"{self.gufunc.text!r}` has {inputs}, but the call gives {given} "
            f"positionally{keywords} (not counting `excluded` ones). Pass one array per input."
        )

    def _none_error(self, name: str, dims: ArgDims) -> BatchShapeError:
        assert self.gufunc is not None
        return BatchShapeError(
            f"{self.label}: argument `{name}` is None, but `signature={self.gufunc.text!r}` "
            f"gives it the core dims {fmt_dims(dims)}, so it must be an array. Pass an array, "
            f"or add `{name}` to `excluded` (a `None` is passed through only where the core "
            "dims are `()`)."
        )

    def _asarray(self, value: Any, name: str) -> Any:
        try:
            return jnp.asarray(value)
        except TypeError as e:
            raise TypeError(
                f"{self.label}: argument `{name}` is not an array ({e}). Every argument that "
                "is not in `excluded` is an array input; add this one to `excluded` to pass "
                "it through unchanged."
            ) from None

    def _check_rank_promotion(
        self, layout: _Layout, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """As `jnp.vectorize`: with `jax_numpy_rank_promotion` "warn" or "raise", batched
        arguments (other than 0-d ones) must all have the same number of batch dims."""
        found = []
        for key, name, rank in layout.batched:
            value = args[key] if isinstance(key, int) else kwargs[key]
            ndim = getattr(value, "ndim", 0)  # keywords may be any object
            if isinstance(ndim, int) and ndim != 0 and ndim >= rank:
                found.append((name, value, ndim - rank))
        if len({batch_rank for _, _, batch_rank in found}) <= 1:
            return
        shapes = ", ".join(f"`{name}` {tuple(value.shape)}" for name, value, _ in found)
        signature = "" if self.gufunc is None else f" (signature {self.gufunc.text!r})"
        message = (
            f"{self.label}: the arguments {shapes} have batch dims of different ranks, which "
            f"require rank promotion{signature}. Add leading size-1 axes, or set the "
            "jax_numpy_rank_promotion config option to 'allow' to disable this message; for "
            "more information, see https://docs.jax.dev/en/latest/rank_promotion_warning.html."
        )
        if _rank_promotion() == "raise":
            raise BroadcastError(message)
        warnings.warn(message, UserWarning, stacklevel=4)

    def prepare(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[BatchedCall, tuple[Any, ...], dict[str, Any]]:
        """The `BatchedCall` of this call's layout, and the arguments it takes: the inputs as
        arrays, as `jnp.vectorize` passes them."""
        key = (len(args), tuple(kwargs))
        layout: _Layout = self.layouts.get(key) or self.layout(*key)
        given_kwargs = kwargs  # the caller's dict: copied before any change
        converted: list[Any] | None = None  # copies of the arguments, made once one converts
        for at, name, entry in layout.inputs:
            value = args[at] if isinstance(at, int) else kwargs[at]
            if value is None:
                if entry:
                    raise self._none_error(name, entry)
                continue  # passed through, as `jnp.vectorize` does
            if ARRAY_TYPES.get(type(value)) or isinstance(value, jax.Array):
                continue  # (`is_array_type`, inlined: this runs for every input of every call)
            if isinstance(at, int):
                converted = list(args) if converted is None else converted
                converted[at] = self._asarray(value, name)
            else:
                kwargs = dict(kwargs) if kwargs is given_kwargs else kwargs
                kwargs[at] = self._asarray(value, name)
        if converted is not None:
            args = tuple(converted)
        if len(layout.batched) > 1 and _rank_promotion() != "allow":  # (one cannot differ)
            self._check_rank_promotion(layout, args, kwargs)
        return layout.call, args, kwargs


def vectorize(
    pyfunc: Callable[..., Any],
    *,
    excluded: Collection[int | str] = frozenset(),
    signature: str | None = None,
) -> Callable[..., Any]:
    """Define a vectorized function with broadcasting: a drop-in for `jax.numpy.vectorize`.

    Same interface and semantics as `jnp.vectorize`, run by `auto_vmap`'s core: `signature`
    is a NumPy gufunc signature whose inputs are matched, in order, to the positional
    arguments not in `excluded`; without one every argument has rank 0 and outputs may have
    any shape. Batch dims broadcast NumPy-style (size-1 dims are closed over, never copied),
    and the same mistakes raise the same exception types as in `jnp.vectorize`: `autovmap`'s
    own errors, naming the arguments and their shapes (before `jax.vmap` runs, for those about
    the arguments). `jax_numpy_rank_promotion` ("warn", "raise") is honoured as
    `jnp.vectorize` does. `autovmap.plan` works on the functions it returns.

    Beyond `jnp.vectorize`: an integer in the signature fixes a size (as in NumPy); keyword
    arguments are batched (a positional parameter passed by keyword fills its signature input;
    other keywords have rank 0), where `jnp.vectorize` drops them; `excluded` names a
    parameter however it is passed; eager calls cost less, the more so the more batch dims.

    ```python
    from functools import partial
    import jax.numpy as jnp
    from autovmap import vectorize

    @partial(vectorize, signature="(n),(n)->()")
    def dot(a, b):
        return a @ b

    assert dot(jnp.ones((5, 1, 3)), jnp.ones((4, 3))).shape == (5, 4)
    ```

    Args:
        pyfunc: the function to vectorize, written for one example.
        excluded: positions (ints) and parameter names (strs) of arguments passed through
            unchanged, not vectorized.
        signature: a gufunc signature such as `"(m,n),(n)->(m)"`; `None`: every argument
            is a scalar per example.

    Raises:
        TypeError: when vectorizing, if `excluded` holds something other than ints and strs;
            when calling, if the call has the wrong number of inputs.
        ValueError: when vectorizing, if `excluded` holds a negative int.
        RankSpecError: when vectorizing, if `signature` is not a gufunc signature (also a
            `ValueError`).
        RankTooLargeError, CoreDimError, BroadcastError: when calling, before `jax.vmap`,
            if the arguments do not fit the signature or each other (all `ValueError`s).
        OutputSignatureError: if an example's return value does not fit the signature's
            outputs (a `TypeError` and a `ValueError`).
    """
    if not callable(pyfunc):
        raise TypeError(f"`vectorize` takes a function to vectorize; got {pyfunc!r}")
    if isinstance(excluded, (str, int)) or not isinstance(excluded, Collection):
        raise TypeError(
            f"`vectorize(excluded=...)` takes a collection of ints and strs, got {excluded!r}; "
            "write `excluded={...}`."
        )
    bad = [e for e in excluded if isinstance(e, bool) or not isinstance(e, (int, str))]
    if bad:
        raise TypeError(
            f"`vectorize` can only exclude integer or string arguments (positions and "
            f"parameter names), but excluded={excluded!r} holds {bad[0]!r}."
        )
    if any(isinstance(e, int) and e < 0 for e in excluded):
        raise ValueError(
            f"`vectorize`: excluded={excluded!r} contains negative numbers; positions count from 0."
        )
    return _vectorized_function(_Vectorized(pyfunc, excluded, signature, Options(check=False)))


def _vectorized_function(vectorized: _Vectorized) -> Callable[..., Any]:
    @functools.wraps(vectorized.pyfunc)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            call, args, kwargs = vectorized.prepare(args, kwargs)
            return call(args, kwargs)
        except Exception as error:  # free until raised
            tidy_traceback(error)  # the user's line, then the message with its notes
            raise

    wrapped.__autovmap__ = vectorized  # type: ignore[attr-defined]
    return wrapped

"""The options of `auto_vmap` (everything but ranks): the one list of them, validated when
written, and how an option left out is told apart from one given."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from jax.sharding import PartitionSpec

from ._errors import OptionError


@dataclasses.dataclass(frozen=True)
class Options:
    """The options of `auto_vmap` (everything but ranks), validated when written. This list
    of fields is the one list of options: `auto_vmap`, `AutoVmap` and the messages read it."""

    check: bool = True
    chunk_size: int | None = None
    axis_name: str | None = None
    spmd_axis_name: Any = None
    signature: str | None = None  # a gufunc signature: read with the ranks, by `read_spec`

    def __post_init__(self) -> None:
        if not isinstance(self.check, bool):
            raise OptionError(
                f"`auto_vmap(check=...)` takes True or False, got {self.check!r}. `check` is an "
                "option, not a parameter name: to rank a parameter called `check`, give its "
                "rank positionally."
            )
        size = self.chunk_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise OptionError(
                f"`auto_vmap(chunk_size=...)` takes an int >= 1 or None, got {size!r}."
            )
        if self.axis_name is not None and not isinstance(self.axis_name, str):
            raise OptionError(
                "`auto_vmap(axis_name=...)` takes a str, the name collectives use "
                f"(`jax.lax.pmean(x, 'batch')`), got {self.axis_name!r}."
            )
        if self.axis_name is not None and size is not None:
            # A collective needs every example at once; a chunk loop holds one chunk, so the
            # collective would silently reduce over that chunk only.
            raise OptionError(
                "`auto_vmap(axis_name=..., chunk_size=...)`: a collective over the batch needs "
                "every example at once, and `chunk_size` evaluates a chunk at a time. Drop one."
            )
        spmd = self.spmd_axis_name
        if spmd is not None and not isinstance(spmd, (str, tuple, PartitionSpec)):
            raise OptionError(
                "`auto_vmap(spmd_axis_name=...)` takes a mesh axis name, a tuple of them, or a "
                f"`PartitionSpec` with one entry per leading batch dim; got {spmd!r}."
            )
        if self.signature is not None and not isinstance(self.signature, str):
            raise OptionError(
                "`auto_vmap(signature=...)` takes a gufunc signature such as '(n),(n,n)->()', "
                f"or None, got {self.signature!r}."
            )


OPTION_NAMES = tuple(field.name for field in dataclasses.fields(Options))


# What an option left out of `auto_vmap(...)` receives, told apart from the same value given:
# a re-decoration applies the options given and keeps the original's for the rest.
_LEFT_OUT: Any = object()


def mark_defaults(fn: Callable[..., Any]) -> None:
    """Make `fn`'s keyword-only options `_LEFT_OUT` when left out. Its source keeps the plain
    defaults (`check: bool = True`), which the API page shows, and its `__signature__` keeps
    them for `help()` and stubtest; they must be the options `Options` lists, with its
    defaults, in its order."""
    declared = {field.name: field.default for field in dataclasses.fields(Options)}
    written = fn.__kwdefaults__ or {}
    if list(written.items()) != list(declared.items()):
        raise AssertionError(f"{fn.__name__}'s options {written} differ from `Options`")
    fn.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    fn.__kwdefaults__ = dict.fromkeys(declared, _LEFT_OUT)


def given_options(keywords: dict[str, Any]) -> dict[str, Any]:
    """The options among `keywords` that were given (not `_LEFT_OUT`)."""
    return {
        name: value
        for name, value in keywords.items()
        if name in OPTION_NAMES and value is not _LEFT_OUT
    }

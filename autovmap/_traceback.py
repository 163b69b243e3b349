"""Hide this library's frames from JAX tracebacks, as JAX and equinox do for their own."""

from __future__ import annotations


def hide_from_tracebacks(path: str) -> None:
    try:
        from jax._src import traceback_util  # private, but stable for years; optional anyway
    except ImportError:  # pragma: no cover
        return
    traceback_util.register_exclusion(path)

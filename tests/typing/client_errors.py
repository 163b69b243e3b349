"""Misuses of `autovmap` that mypy (without the plugin) and pyright must both report.

Every line that ends in an `E:` comment must be reported by both checkers, and no other line:
tests/test_typing.py compares the line numbers. This file is type-checked, never run.
"""

from jax import Array

from autovmap import auto_vmap


def vector() -> Array:
    raise NotImplementedError


v = vector()


@auto_vmap(a=1, b=1)
def add(a: Array, b: Array, *, scale: float = 1.0) -> Array:
    return scale * (a + b)


@auto_vmap(a=1)
def norm(a: Array) -> float:
    return 0.0


class Model:
    @auto_vmap(None, 1)
    def apply(self, a: Array) -> Array:
        return a

    @auto_vmap(a=1)
    @staticmethod
    def static(a: Array) -> Array:
        return a


# The batched functions keep their parameters.
add(v)  # E: missing argument
add(v, v, v)  # E: too many positional arguments
add(v, v, c=v)  # E: unknown keyword
add(v, v, scale="large")  # E: wrong argument type
Model().apply(v, v)  # E: a method binds `self` like a plain function
Model.static(a=v, b=v)  # E: unknown keyword of a staticmethod

# They keep their return types, and a scalar-returning function may return an array.
label: str = add(v, v)  # E: an array is not a str
total: float = norm(v)  # E: `Array | float` is not a float

# A rank is an int, None, or a pytree of those; `check` and `chunk_size` are options.
auto_vmap(a=1.5)  # E: a float rank
auto_vmap(1, a=(1, 2.5))  # E: a float in a rank pytree
auto_vmap(a={"w": [0.5]})  # E: a float deep in a rank pytree
auto_vmap(check=1)  # E: `check` takes a bool
auto_vmap(chunk_size=0.5)  # E: `chunk_size` takes an int
auto_vmap(a=1)(42)  # E: only functions are decorated

"""`Batched[T, "dims"]` is `T` to type checkers, as jaxtyping's `Float[Array, "n"]` is `Array`:
this file must check clean under `mypy --strict` and strict pyright, and runs (the stacks it
builds pass the run-time check)."""

import dataclasses
from typing import assert_type

import jax
import jax.numpy as jnp
from jax import Array
from jaxtyping import Float

from autovmap import Batched, auto_vmap


def ones(*shape: int) -> Array:
    # jax leaves a parameter of `jnp.ones` (`device`) partly untyped, which strict pyright reports.
    return jnp.ones(shape)  # pyright: ignore[reportUnknownMemberType]


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Dense:
    w: Float[Array, "n m"]
    b: Float[Array, "m"]


def biases(models: Batched[Dense, "e"]) -> Float[Array, "e m"]:
    assert_type(models, Dense)  # the stack has the type of one example
    assert_type(models.w, Array)
    return models.b


stack: Batched[Dense, "e"] = Dense(ones(4, 2, 3), ones(4, 3))
assert_type(stack, Dense)
assert_type(biases(stack), Array)
many: Batched[Batched[Dense, "e"], "k"] = Dense(ones(5, 4, 2, 3), ones(5, 4, 3))
assert_type(many, Dense)
particles: Batched[Float[Array, "3"], "p"] = ones(10, 3)
assert_type(particles, Array)


@auto_vmap
def apply(models: Batched[Dense, "e"], x: Float[Array, "n"]) -> Float[Array, "e m"]:
    return x @ models.w + models.b


assert_type(apply(stack, ones(7, 2)), Array)
assert apply(stack, ones(7, 2)).shape == (7, 4, 3)

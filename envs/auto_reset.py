"""Auto-reset that builds fresh episodes only where they are needed, for envs whose reset is costly.

gymnax's ``Environment.step`` computes a fresh episode on every step and keeps
it where the episode ended (``lax.select``). That is free for CartPole and
dominant for Craftax, whose reset generates a world: on a CPU core 64 copies
of Craftax-Classic step about 20x faster without it (``python scripts/benchmark.py suites``).

:func:`auto_reset` replaces that select. For one env it is a real
``lax.cond``: the reset runs only on the step where the episode ended. Under
``jax.vmap`` (the agents step ``num_envs`` copies that way) a custom batching
rule resets optimistically, as Craftax's own ``OptimisticResetVecEnvWrapper``
does: each step builds ``ceil(copies / reset_ratio)`` fresh episodes and hands
them to the copies that ended, in order; when more copies end on one step
than there are fresh episodes, some of them start the same episode (same
world, same first observation). ``reset_ratio=1`` gives every copy its own
fresh episode, like gymnax. An outer ``vmap`` (over seeds) batches the rule
itself, so each seed's copies share only their own fresh episodes.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp


def check_reset_ratio(reset_ratio: Any) -> int:
    """``reset_ratio`` as an int; a one-sentence ValueError unless it is a positive whole number."""
    if isinstance(reset_ratio, bool) or int(reset_ratio) != reset_ratio or int(reset_ratio) < 1:
        raise ValueError(f"reset_ratio must be a positive number of copies per fresh episode, got {reset_ratio!r}.")
    return int(reset_ratio)


def auto_reset(
    reset: Callable[[jax.Array, Any], tuple[Any, Any]], reset_ratio: int
) -> Callable[[jax.Array, jax.Array, Any, Any, Any], tuple[Any, Any]]:
    """``(done, key, params, obs, state) -> (obs, state)``: ``reset(key, params)`` where ``done``, else unchanged.

    ``reset`` is the env's ``reset_env``; see the module docstring for what
    ``reset_ratio`` (copies per fresh episode under vmap) trades.
    """
    reset_ratio = check_reset_ratio(reset_ratio)

    @jax.custom_batching.custom_vmap
    def one_env(done, key, params, obs, state):
        return jax.lax.cond(done, lambda: reset(key, params), lambda: (obs, state))

    @one_env.def_vmap
    def copies(axis_size, in_batched, done, key, params, obs, state):
        done_b, key_b, params_b, obs_b, state_b = in_batched
        done, key = _broadcast(done, done_b, axis_size), _broadcast(key, key_b, axis_size)
        obs, state = _broadcast(obs, obs_b, axis_size), _broadcast(state, state_b, axis_size)
        if any(jax.tree.leaves(params_b)):  # per-copy params: each copy needs its own fresh episode
            fresh = jax.vmap(reset)(key, params)
            slot = jnp.arange(axis_size)
        else:
            pool = min(axis_size, math.ceil(axis_size / reset_ratio))
            fresh = jax.vmap(reset, in_axes=(0, None))(key[:pool], params)
            slot = (jnp.cumsum(done) - 1) % pool  # the i-th copy to end takes fresh episode i mod pool

        def choose(fresh_leaf, old_leaf):
            taken = fresh_leaf[slot]
            if jnp.issubdtype(taken.dtype, jax.dtypes.prng_key):  # typed keys: select their raw data
                data = choose(jax.random.key_data(taken), jax.random.key_data(old_leaf))
                return jax.random.wrap_key_data(data, impl=jax.random.key_impl(taken))
            return jnp.where(done.reshape(done.shape + (1,) * (taken.ndim - 1)), taken, old_leaf)

        out = jax.tree.map(choose, fresh, (obs, state))
        return out, jax.tree.map(lambda _: True, out)

    return one_env


def _broadcast(tree: Any, batched: Any, axis_size: int) -> Any:
    """Give every unbatched leaf of ``tree`` a leading axis of ``axis_size``."""
    return jax.tree.map(lambda x, b: x if b else jnp.broadcast_to(x, (axis_size, *jnp.shape(x))), tree, batched)

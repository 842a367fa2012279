"""The world model on its own: fit it to recorded sequences, then imagine after a context.

These are the two halves of every world-model probe (S4WM's protocol, Deng et
al. 2023, sec. 4): :func:`fit_world_model` trains the model alone on batches
drawn from a fixed dataset, and :func:`imagine_after_context` observes a
context with the posterior and rolls the prior forward open loop under the
recorded actions. ``scripts/eval_worldmodel.py`` (windows of POPGym data) and
:mod:`mnemax.experiment.memory_benchmark` (whole scripted episodes of the
memory suite) differ only in how a batch is drawn and how the predictions are
scored.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import jax
import numpy as np
import optax

from mnemax.worldmodels.batch import SequenceBatch
from mnemax.worldmodels.protocol import Prediction, WorldModel

BatchSampler = Callable[[Any, jax.Array], SequenceBatch]
"""``sample(data, key) -> SequenceBatch [T, B, ...]``: one training batch drawn from the dataset ``data``."""


class FitResult(NamedTuple):
    """A trained world model: ``params``, ``losses [updates]``, and the compiled run's ``seconds`` and ``frames_per_second``."""

    params: Any
    losses: np.ndarray
    seconds: float
    frames_per_second: float


def fit_world_model(
    model: WorldModel,
    data: Any,
    sample: BatchSampler,
    updates: int,
    learning_rate: float,
    key: jax.Array,
    grad_clip: float = 1000.0,
) -> FitResult:
    """Train ``model`` alone for ``updates`` Adam steps on batches ``sample(data, key)``.

    Every batch starts from the model's initial state (batches begin at episode starts).
    The whole loop is one ``lax.scan`` under one jit; ``seconds`` and
    ``frames_per_second`` time the compiled run only, so the compile is not
    counted as training throughput. DreamerV3's optimiser: global-norm
    clipping at ``grad_clip``, then Adam with eps 1e-8.
    """
    init_key, key = jax.random.split(key)
    params = model.init(init_key)
    optimizer = optax.chain(optax.clip_by_global_norm(grad_clip), optax.adam(learning_rate, eps=1e-8))
    shape = jax.eval_shape(sample, data, key)

    def run(params, data, key):
        def update(state, key):
            params, opt_state = state
            sample_key, loss_key = jax.random.split(key)
            batch = sample(data, sample_key)
            loss_fn = lambda p: model.loss(p, batch, loss_key)  # noqa: E731
            (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            step, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, step), opt_state), loss

        return jax.lax.scan(update, (params, optimizer.init(params)), jax.random.split(key, updates))

    compiled = jax.jit(run).lower(params, data, key).compile()
    tic = time.perf_counter()
    (params, _), losses = jax.block_until_ready(compiled(params, data, key))
    seconds = time.perf_counter() - tic
    frames = updates * int(np.prod(shape.resets.shape))
    return FitResult(params, np.asarray(losses), seconds, frames / seconds)


def imagine_after_context(model: WorldModel, params: Any, batch: SequenceBatch, context: int, key: jax.Array) -> Prediction:
    """Observe ``batch[:context]``, then imagine ``batch[context:]`` open loop under its recorded actions.

    Returns the model's predictions for the imagined steps, ``[T - context, B, ...]``:
    what it expects to see and be rewarded from what the context told it.
    """
    observe_key, imagine_key = jax.random.split(key)
    seen = jax.tree.map(lambda x: x[:context], batch)
    state = model.observe(params, model.initial_state(batch.resets.shape[1]), seen, observe_key)
    return model.imagine_open_loop(params, state, batch.prev_actions[context:], imagine_key)

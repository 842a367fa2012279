"""World-model section: one world-model update per backbone over sequence length, and imagination speed.

Update: ``jit`` of loss, gradient and an Adam step of
:func:`mnemax.worldmodels.losses.world_model_loss` on ``[T, B = 16]``
sequences of 64-dim observations, every backbone with the same latent sizes
(32 x 32), MLP width and backbone width. Imagination: steps per second of
:func:`mnemax.worldmodels.sequence_model.imagine` (backbone in step mode, a
random policy) over ``N`` start states for 15 steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import mnemax.backbones as backbones
from benchmarks.timing import Table, measure, megabytes
from mnemax.backbones import BackboneSpec
from mnemax.experiment.composition import backbone_size
from mnemax.worldmodels.losses import SequenceBatch, world_model_loss
from mnemax.worldmodels.sequence_model import (
    LatentState,
    WorldModelConfig,
    build_model,
    imagine,
    init_params,
    initial_carry,
)

OBS, ACTIONS = 64, 4


def _options(name: str, quick: bool) -> tuple:
    """The ``one_layer`` size (as in the backbone section); the transformer's window covers T=1024."""
    options = dict(backbone_size(name, "one_layer", 1).options)
    if name == "transformer":
        options["window"] = 64 if quick else 1024
    return tuple(sorted(options.items()))


def _update(model, optimizer):
    def update(params, opt_state, batch, key):
        carry = initial_carry(model, batch.resets.shape[1])
        grads = jax.grad(lambda p: world_model_loss(model, p, carry, batch, key)[0])(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return update


def _batch(length: int, batch: int, key: jax.Array) -> SequenceBatch:
    keys = jax.random.split(key, 4)
    return SequenceBatch(
        obs=jax.random.normal(keys[0], (length, batch, OBS)),
        prev_actions=jax.nn.one_hot(jax.random.randint(keys[1], (length, batch), 0, ACTIONS), ACTIONS),
        rewards=jax.random.normal(keys[2], (length, batch)),
        continues=jnp.ones((length, batch)),
        resets=jax.random.bernoulli(keys[3], 1 / 256, (length, batch)).at[0].set(True),
    )


def run(quick: bool) -> list[Table]:
    lengths, batch, features, latents = ((16, 32), 4, 32, 4) if quick else ((64, 256, 1024), 16, 256, 32)
    starts, horizon = (16, 5) if quick else (1024, 15)
    repeats, min_seconds = (2, 0.0) if quick else (5, 1.0)
    update_table = Table(
        title=f"World-model update (loss + grad + Adam), B = {batch}, backbone width {features}, latents {latents} x {latents}",
        columns=["backbone", "T", "update ms", "replayed steps/s", "compile s", "peak MB"],
    )
    imagine_table = Table(
        title=f"Imagination (step mode), {starts} starts x {horizon} steps",
        columns=["backbone", "imagined steps/s", "ms per call", "compile s"],
    )
    times: dict[tuple[str, int], float] = {}
    for name in backbones.plain_input_names():  # the model feeds the core one array [z, a]
        config = WorldModelConfig(
            backbone=BackboneSpec(name, features, _options(name, quick)),
            latent_groups=latents,
            latent_classes=latents,
            hidden=features,
        )
        model = build_model(config, (OBS,), ACTIONS)
        params = jax.jit(lambda key: init_params(model, key))(jax.random.key(0))
        optimizer = optax.chain(optax.clip_by_global_norm(1000.0), optax.adam(1e-4))
        opt_state = optimizer.init(params)
        update = _update(model, optimizer)
        for length in lengths:
            data = _batch(length, batch, jax.random.key(length))
            result = measure(update, params, opt_state, data, jax.random.key(1), repeats=repeats, min_seconds=min_seconds)
            times[name, length] = result.median_seconds
            update_table.rows.append(
                [name, length, result.median_seconds * 1e3, length * batch / result.median_seconds,
                 result.compile_seconds, megabytes(result.peak_bytes)]
            )

        def policy(features, key):
            return jax.nn.one_hot(jax.random.randint(key, features.shape[:1], 0, ACTIONS), ACTIONS)

        def rollout(params, key):
            start = LatentState(jnp.zeros((starts, features)), jnp.zeros((starts, config.latent_size)))
            return imagine(model, params, initial_carry(model, starts), start, policy, horizon, key)

        result = measure(rollout, params, jax.random.key(2), repeats=repeats, min_seconds=min_seconds)
        imagine_table.rows.append([name, starts * horizon / result.median_seconds, result.median_seconds * 1e3, result.compile_seconds])
    last = lengths[-1]
    ratios = []
    for other in ("s5", "transformer"):
        if (other, last) in times and ("gru", last) in times:
            ratios.append(f"{other} / gru = {times[other, last] / times['gru', last]:.2f}")
    update_table.note = (
        "Same latent sizes, MLP width and backbone width for every backbone; layered backbones with one layer; "
        "the transformer's attention window covers the whole sequence. "
        f"Update-time ratios at T = {last}: {', '.join(ratios)}."
    )
    return [update_table, imagine_table]

"""EBWM section: one training step of the energy-based world model against the same-size direct-prediction baseline.

A training step is ``jit`` of loss, gradient and an Adam step of the model's
own ``loss`` (:class:`mnemax.worldmodels.ebwm.EnergyWorldModel`) on ``[T, B]``
sequences of Pendulum-v1's shapes (3 observation values, 1 action). The EBWM
backpropagates its prediction loss through the thinking steps (second-order
gradients), so a step costs more than the baseline's, which runs the same
transformer once with an MSE head (``head=direct``). The three cases of a size
are timed call after call (:func:`benchmarks.timing.measure_interleaved`), so
each round's ratio compares calls made at nearly the same moment; the table
gives the median ratio and its min-max over rounds.
"""

from __future__ import annotations

import statistics

import jax
import numpy as np
import optax

from benchmarks.timing import Table, measure_interleaved, megabytes
from mnemax.experiment.compare import count_parameters
from mnemax.worldmodels import SequenceBatch, make_world_model
from mnemax.worldmodels.ebwm import EBWMConfig

OBS, ACTIONS = 3, 1


def _batch(length: int, batch: int, key: jax.Array) -> SequenceBatch:
    keys = jax.random.split(key, 3)
    return SequenceBatch(
        obs=jax.random.normal(keys[0], (length, batch, OBS)),
        prev_actions=jax.random.uniform(keys[1], (length, batch, ACTIONS), minval=-1, maxval=1),
        rewards=jax.random.normal(keys[2], (length, batch)),
        continues=np.ones((length, batch), np.float32),
        resets=_first_step(length, batch),
    )


def _first_step(length: int, batch: int) -> np.ndarray:
    resets = np.zeros((length, batch), bool)
    resets[0] = True
    return resets


def _train_step(model, optimizer):
    def step(params, opt_state, batch, key):
        (loss, _), grads = jax.value_and_grad(lambda p: model.loss(p, batch, key), has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return step


def _cases(hidden: int) -> dict[str, EBWMConfig]:
    """The models compared at one width: System 1 at 2 thinking steps (the issue's case; also with only the last
    step differentiated, EBT's truncated option), System 2 at up to 4, direct."""
    size = dict(hidden=hidden, layers=2, heads=4, context=16)
    return {
        "EBWM System 1, 2 steps": EBWMConfig(**size, thinking_steps=2),
        "EBWM System 1, 2 steps, last differentiated": EBWMConfig(**size, thinking_steps=2, differentiate="last"),
        "EBWM System 2, 1-4 steps": EBWMConfig(**size, recipe="system2", thinking_steps=4, min_thinking_steps=1, langevin_noise=0.01),
        "direct": EBWMConfig(**size, head="direct"),
    }


def run(quick: bool) -> list[Table]:
    widths, (length, batch) = ((16,), (8, 2)) if quick else ((64, 128), (32, 16))
    rounds, min_seconds = (2, 0.0) if quick else (15, 3.0)
    table = Table(
        title=f"EBWM training step (loss + grad + Adam), T = {length}, B = {batch}, two layers, context 16",
        columns=["model", "hidden", "parameters", "step ms", "time vs direct (median, min-max)", "compile s", "peak MB"],
    )
    data = _batch(length, batch, jax.random.key(0))
    for hidden in widths:
        names, cases = [], []
        for name, config in _cases(hidden).items():
            model = make_world_model(config, (OBS,), ACTIONS)
            params = model.init(jax.random.key(1))
            optimizer = optax.chain(optax.clip_by_global_norm(1000.0), optax.adam(1e-3, eps=1e-8))
            names.append(name)
            cases.append((_train_step(model, optimizer), (params, optimizer.init(params), data, jax.random.key(2))))
        measured = measure_interleaved(cases, rounds=rounds, min_seconds=min_seconds)
        direct = measured[-1]
        for name, (_, args), result in zip(names, cases, measured):
            ratios = [a / b for a, b in zip(result.seconds, direct.seconds)]
            table.rows.append([
                name, hidden, f"{count_parameters(args[0]):,}", result.median_seconds * 1e3,
                f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})",
                result.compile_seconds, megabytes(result.peak_bytes),
            ])
    table.note = (
        "The EBWM and the direct baseline are the same transformer; the EBWM adds the energy head and the thinking "
        "steps' second-order gradients. Ratios are per round of interleaved calls (`measure_interleaved`)."
    )
    return [table]

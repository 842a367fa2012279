"""Backbone section: forward + backward time of every registered backbone over sequence length,
and the cost of one step in step mode (acting, imagination).

Each backbone runs ``jit(value_and_grad(sum of outputs))`` with respect to its
parameters on ``inputs [T, B, D]`` (cut into its input parts for a core that has
them, e.g. dcem's vision and language) with random resets (one per 256 steps on
average), from the initial carry. Step mode: ``STEP_HORIZON`` calls with
``T = 1`` threaded through a ``lax.scan``, as imagination runs them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import mnemax.backbones as backbones
from benchmarks.timing import Table, measure, megabytes
from mnemax.experiment.composition import backbone_size

FEATURES = 128
STEP_HORIZON = 15


def _one_layer(name: str) -> dict:
    """The ``one_layer`` size of ``configs/backbone/<name>.yaml``, so each row is one recurrent layer."""
    return dict(backbone_size(name, "one_layer", FEATURES).options)


def variants() -> list[tuple[str, str, dict]]:
    """(row label, backbone name, options): every registered backbone with its defaults, plus S5 with the
    associative scan, which ``scan_method="auto"`` replaces by the sequential scan on a CPU."""
    rows = []
    for name in backbones.names():
        options = _one_layer(name)
        if name == "s4d":
            options["chunk_size"] = 1024  # 64 states per channel: [4096, 16, 128 x 64] complex states need ~11 GB
        rows.append((name, name, options))
        if name == "s5":
            rows.append(("s5 (associative)", name, {**options, "scan_method": "associative"}))
    return rows


def carry_kilobytes(carry) -> float:
    """Size of one sequence's carry in KB (batch is every leaf's leading axis): what a step must read and write."""
    leaves = jax.tree.leaves(carry)
    return sum(leaf.size * leaf.dtype.itemsize for leaf in leaves) / leaves[0].shape[0] / 1024


def step_rows(labels: list[tuple[str, str, dict]], batch: int, repeats: int, min_seconds: float) -> list[list]:
    """``[label, steps/s, ms per step, carry KB, compile s]`` of ``STEP_HORIZON`` single steps of each backbone."""
    rows = []
    for label, name, options in labels:
        module = backbones.make(name, FEATURES, **options)
        keys = jax.random.split(jax.random.key(0), 2)
        inputs = jax.random.normal(keys[0], (STEP_HORIZON, 1, batch, FEATURES))
        inputs = backbones.split_parts(inputs, backbones.input_parts(module))
        no_resets = jnp.zeros((1, batch), bool)
        carry = module.initialize_carry(batch)
        params = jax.jit(module.init)(keys[1], carry, jax.tree.map(lambda x: x[0], inputs), no_resets)

        def steps(params, carry, inputs):
            def one(carry, x):
                carry, y = module.apply(params, carry, x, no_resets)
                return carry, y[0, :, 0]

            return jax.lax.scan(one, carry, inputs)

        result = measure(steps, params, carry, inputs, repeats=repeats, min_seconds=min_seconds)
        seconds = result.median_seconds / STEP_HORIZON
        rows.append([label, batch / seconds, seconds * 1e3, carry_kilobytes(carry), result.compile_seconds])
    return rows


def _fwd_bwd(module):
    def loss(params, carry, inputs, resets):
        _, outputs = module.apply(params, carry, inputs, resets)
        return jnp.sum(outputs)

    return jax.value_and_grad(loss)


def run(quick: bool) -> list[Table]:
    lengths, batch = ((16, 32), 2) if quick else ((64, 256, 1024, 4096), 16)
    repeats, min_seconds = (2, 0.0) if quick else (5, 1.0)
    table = Table(
        title=f"Backbones: forward + backward, B = {batch}, features {FEATURES}, one layer",
        columns=["backbone", "T", "fwd+bwd ms", "steps/s", "compile s", "peak MB"],
    )
    times: dict[tuple[str, int], float] = {}
    for label, name, options in variants():
        module = backbones.make(name, FEATURES, **options)
        step = jax.jit(_fwd_bwd(module))
        for length in lengths:
            keys = jax.random.split(jax.random.key(length), 3)
            inputs = backbones.split_parts(jax.random.normal(keys[0], (length, batch, FEATURES)), backbones.input_parts(module))
            resets = jax.random.bernoulli(keys[1], 1 / 256, (length, batch))
            carry = module.initialize_carry(batch)
            params = jax.jit(module.init)(keys[2], carry, jax.tree.map(lambda x: x[:1], inputs), resets[:1])
            result = measure(step, params, carry, inputs, resets, repeats=repeats, min_seconds=min_seconds)
            times[label, length] = result.median_seconds
            table.rows.append(
                [
                    label,
                    length,
                    result.median_seconds * 1e3,
                    length * batch / result.median_seconds,
                    result.compile_seconds,
                    megabytes(result.peak_bytes),
                ]
            )
    ratios = [
        f"T={length}: {times[label, length] / times['gru', length]:.2f} ({label})"
        for length in lengths[-2:]
        for label in ("s5", "s5 (associative)")
        if (label, length) in times and ("gru", length) in times
    ]
    table.note = (
        "Default options except `num_layers=1` for the layered backbones (every one with a `num_layers` option), so each "
        "row is one recurrent layer, like the single-cell GRU and LSTM; the SSMs' default stack has 4 layers "
        "and costs about 4x. `s5` uses `scan_method=\"auto\"` (the sequential scan on a CPU, the associative "
        "scan on GPU/TPU); `s5 (associative)` forces `jax.lax.associative_scan`. s4d runs with `chunk_size=1024` "
        "(recomputed chunks) to bound its memory. Median of repeats after one warm-up; compile is lowering + XLA compilation; "
        "peak is XLA's buffer assignment (arguments + outputs + temporaries). "
        f"S5 / GRU time ratio: {', '.join(ratios)}."
    )
    step_batch = 16 if quick else 256
    step_table = Table(
        title=f"Backbones: step mode (T = 1), B = {step_batch}, features {FEATURES}, one layer, {STEP_HORIZON} steps per call",
        columns=["backbone", "steps/s", "ms per step", "carry KB per sequence", "compile s"],
        rows=step_rows(variants() + [("transformer (window 1024)", "transformer", {**_one_layer("transformer"), "window": 1024})],
                       step_batch, repeats, min_seconds),
    )
    step_table.note = (
        "The same options as above; one call is a `lax.scan` of single steps with the carry threaded, "
        "as imagination and acting run a backbone. A step reads and rewrites the carry, so a large carry "
        "(the transformer's key/value cache: 2 x (window + 1) x features floats per layer) bounds the step "
        "by memory bandwidth rather than arithmetic."
    )
    return [table, step_table]

"""Supervised state-tracking tasks for every backbone: train short, test long.

The question (Grazzi et al. 2025, "Unlocking State-Tracking in Linear RNNs
Through Negative Eigenvalues"): a linear recurrence whose transition
eigenvalues lie in ``[0, 1]`` cannot track parity or modular counts, and one
whose eigenvalues reach ``[-1, 1]`` can, at any length. Each task is a token
stream with a label at every step:

- ``parity``: bits ``b_t``, label ``b_1 + ... + b_t mod 2``.
- ``mod3``: digits ``x_t`` in ``{0, 1, 2}``, label ``x_1 + ... + x_t mod 3``.

A backbone reads one-hot tokens ``[T, B, K]``; a linear head on its outputs
gives logits per step, trained by cross-entropy over all steps of sequences of
``train_length``. Test accuracy is measured on fresh sequences of each test
length, over their last ``train_length`` steps (so the long lengths score only
positions never seen in training). Seeds are vmapped: one compiled program
trains all of them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import mnemax.backbones as backbones
from mnemax.experiment.compare import count_parameters


def parity_stream(key: jax.Array, batch: int, length: int) -> tuple[jax.Array, jax.Array]:
    """``(bits [T, B], running parity [T, B])``."""
    return modular_stream(key, batch, length, 2)


def modular_stream(key: jax.Array, batch: int, length: int, modulus: int) -> tuple[jax.Array, jax.Array]:
    """``(tokens [T, B] in [0, modulus), running sum mod modulus [T, B])``."""
    tokens = jax.random.randint(key, (length, batch), 0, modulus)
    return tokens, jnp.cumsum(tokens, axis=0) % modulus


TASKS: dict[str, tuple[int, Callable[[jax.Array, int, int], tuple[jax.Array, jax.Array]]]] = {
    "parity": (2, parity_stream),
    "mod3": (3, lambda key, batch, length: modular_stream(key, batch, length, 3)),
}


@dataclasses.dataclass(frozen=True)
class StateTrackingConfig:
    """Sizes of one check; the defaults run every core in minutes on a small CPU."""

    features: int = 32
    num_layers: int = 1
    steps: int = 200
    batch: int = 16
    train_length: int = 64
    test_lengths: tuple[int, ...] = (64, 256, 1024)
    test_batch: int = 16
    learning_rate: float = 3e-3
    seeds: int = 3


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row: a label, the backbone name and its options."""

    label: str
    backbone: str
    options: tuple[tuple[str, object], ...]


# Per-core settings that differ from the shared size: the transformer sees its whole training length;
# the LRU is run real-valued (max_phase = 0), the setting in which its eigenvalue sign is the question.
CORE_OPTIONS = {"transformer": {"window": 64, "num_heads": 2}, "lru": {"max_phase": 0.0}}


def variants(names: Sequence[str], config: StateTrackingConfig) -> list[Variant]:
    """Every backbone in ``names``, twice for those with a ``negative_eigenvalues`` option.

    A core that also has a short convolution (``conv_size``) gets a third row,
    eigenvalues in [-1, 1] with ``conv_size=1`` (each step sees only its own
    input), so the table shows what the convolution does to state tracking.
    """
    rows = []
    for name in names:
        fields = {f.name for f in dataclasses.fields(backbones.make(name, config.features))}
        options = {"num_layers": config.num_layers} if "num_layers" in fields else {}
        options |= {k: v for k, v in CORE_OPTIONS.get(name, {}).items() if k in fields}
        if "negative_eigenvalues" in fields:
            rows.append(Variant(f"{name} [0, 1]", name, tuple(sorted((options | {"negative_eigenvalues": False}).items()))))
            rows.append(Variant(f"{name} [-1, 1]", name, tuple(sorted((options | {"negative_eigenvalues": True}).items()))))
            if "conv_size" in fields:
                unconvolved = options | {"negative_eigenvalues": True, "conv_size": 1}
                rows.append(Variant(f"{name} [-1, 1] conv_size 1", name, tuple(sorted(unconvolved.items()))))
        else:
            rows.append(Variant(name, name, tuple(sorted(options.items()))))
    return rows


class SequenceClassifier(nn.Module):
    """A backbone over one-hot tokens and a linear head: ``tokens [T, B] -> logits [T, B, K]``."""

    backbone: nn.Module
    num_classes: int

    @nn.compact
    def __call__(self, tokens: jax.Array) -> jax.Array:
        inputs = jax.nn.one_hot(tokens, self.num_classes)
        resets = jnp.zeros(tokens.shape, bool)
        _, outputs = self.backbone(self.backbone.initialize_carry(tokens.shape[1]), inputs, resets)
        return nn.Dense(self.num_classes, name="head")(outputs)


def train_and_test(variant: Variant, task: str, config: StateTrackingConfig, seed: int = 0) -> dict:
    """Train ``config.seeds`` seeds (vmapped) on ``task``; returns accuracies ``[seeds, lengths]`` and timings."""
    num_classes, stream = TASKS[task]
    model = SequenceClassifier(backbones.make(variant.backbone, config.features, **dict(variant.options)), num_classes)
    optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(config.learning_rate))

    def loss(params, tokens, labels):
        logits = model.apply(params, tokens)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    def init(key):
        params = model.init(key, jnp.zeros((config.train_length, 1), jnp.int32))
        return params, optimizer.init(params)

    def train(key):
        key, init_key = jax.random.split(key)
        params, opt_state = init(init_key)

        def update(carry, step_key):
            params, opt_state = carry
            tokens, labels = stream(step_key, config.batch, config.train_length)
            value, grads = jax.value_and_grad(loss)(params, tokens, labels)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, _), losses = jax.lax.scan(update, (params, opt_state), jax.random.split(key, config.steps))
        return params, losses

    def accuracy(params, key, length):
        tokens, labels = stream(key, config.test_batch, length)
        hits = jnp.argmax(model.apply(params, tokens), axis=-1) == labels
        return jnp.mean(hits[-config.train_length :])

    keys = jax.random.split(jax.random.key(seed), config.seeds)
    start = time.perf_counter()
    params, losses = jax.block_until_ready(jax.jit(jax.vmap(train))(keys))
    train_seconds = time.perf_counter() - start
    test_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
    accuracies = [
        np.asarray(jax.jit(jax.vmap(lambda p, k, n=n: accuracy(p, k, n)))(params, test_keys)) for n in config.test_lengths
    ]
    return {
        "accuracy": np.stack(accuracies, axis=1),  # [seeds, lengths]
        "final_loss": np.asarray(losses[:, -50:].mean(axis=1)),
        "train_seconds": train_seconds,
        "parameters": count_parameters(init(jax.random.key(0))[0]),
    }


def format_table(results: dict[tuple[str, str], dict], config: StateTrackingConfig) -> str:
    """Markdown: one row per (task, variant), accuracy mean ± std over seeds at each test length."""
    lengths = " | ".join(f"acc @ {n}" for n in config.test_lengths)
    lines = [
        f"| task | core | params | {lengths} | train loss | train s |",
        "|" + "---|" * (5 + len(config.test_lengths)),
    ]
    for (task, label), row in results.items():
        acc = row["accuracy"]
        cells = " | ".join(f"{m:.3f} ± {s:.3f}" for m, s in zip(acc.mean(0), acc.std(0)))
        lines.append(
            f"| {task} | {label} | {row['parameters']:,} | {cells} | {row['final_loss'].mean():.3f} | "
            f"{row['train_seconds']:.0f} |"
        )
    return "\n".join(lines)

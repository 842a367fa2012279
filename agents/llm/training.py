"""Next-token training of a :class:`~mnemax.agents.llm.model.DecoderLM` on token sequences, and word-level tokenizers.

Small models trained here (the EAST demonstration) are saved as Hugging
Face-format folders, so the same :func:`~mnemax.agents.llm.load` that reads a
downloaded checkpoint reads them.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mnemax.agents.llm.config import LMConfig
from mnemax.agents.llm.model import DecoderLM


def word_level_tokenizer(words: Sequence[str], specials: Sequence[str] = ("<pad>", "<eos>", "<unk>")):
    """A ``tokenizers`` word-level tokenizer over whitespace-separated ``words`` (ids: specials first)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    vocab = {}
    for word in [*specials, *words]:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    return tokenizer


def masked_next_token_loss(logits: jax.Array, tokens: jax.Array, loss_mask: jax.Array) -> jax.Array:
    """Mean cross-entropy of predicting ``tokens[:, 1:]`` from ``logits[:, :-1]`` where ``loss_mask[:, 1:]`` is true.

    ``logits`` ``[B, T, V]``, ``tokens`` and ``loss_mask`` ``[B, T]``.
    """
    losses = optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], tokens[:, 1:])
    weights = loss_mask[:, 1:].astype(jnp.float32)
    return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def make_optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    """AdamW with warm-up and cosine decay, after global-norm clipping at 1."""
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, max(steps // 20, 1), steps, learning_rate / 10)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=0.01))


def train_lm(
    config: LMConfig,
    tokens: np.ndarray,
    loss_mask: np.ndarray,
    key: jax.Array,
    *,
    steps: int,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    chunk: int = 100,
) -> tuple[dict, np.ndarray]:
    """Train from scratch on ``tokens`` ``[N, T]``, loss only where ``loss_mask`` ``[N, T]`` is true.

    Returns ``(params, losses[steps])``. Steps run in jitted chunks of ``chunk`` (a ``lax.scan``).
    """
    model = DecoderLM(config)
    init_key, key = jax.random.split(key)
    params = model.init(init_key, jnp.asarray(tokens[:1]))["params"]
    optimizer = make_optimizer(learning_rate, steps)
    data, mask = jnp.asarray(tokens, jnp.int32), jnp.asarray(loss_mask, bool)

    def loss_fn(p, batch, batch_mask):
        return masked_next_token_loss(model.apply({"params": p}, batch), batch, batch_mask)

    @functools.partial(jax.jit, static_argnums=3)
    def run_chunk(p, opt_state, chunk_key, n):
        def step(carry, step_key):
            p, opt_state = carry
            rows = jax.random.randint(step_key, (batch_size,), 0, data.shape[0])
            loss, grads = jax.value_and_grad(loss_fn)(p, data[rows], mask[rows])
            updates, opt_state = optimizer.update(grads, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state), loss

        return jax.lax.scan(step, (p, opt_state), jax.random.split(chunk_key, n))

    opt_state, losses, done = optimizer.init(params), [], 0
    while done < steps:
        n = min(chunk, steps - done)
        key, chunk_key = jax.random.split(key)
        (params, opt_state), chunk_losses = run_chunk(params, opt_state, chunk_key, n)
        losses.append(np.asarray(chunk_losses))
        done += n
    return params, np.concatenate(losses)

"""Batched sampling under ``jax.jit``: prefill a KV cache with the prompt, then one token per step.

Prompts are left-padded to one length ``Tp`` (``prompt_valid`` false at the
padding), so a batch of prompts of different lengths runs as one program.
Temperature and top-p are traced arguments: sweeping them does not
recompile. Temperature 0 means greedy decoding.

Steering during generation follows the paper's "at each generation step": the
vector is added at every position that produces a new token, i.e. the last
prompt token and every generated token.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mnemax.agents.llm.config import LMConfig
from mnemax.agents.llm.model import DecoderLM, Steering, init_cache


class Generation(NamedTuple):
    """Sampled continuations ``tokens`` ``[B, N]`` (padded with EOS after the first EOS), and
    ``activation`` ``[B, D]``: the residual after block ``capture`` at the last prompt token (or None)."""

    tokens: jax.Array
    activation: jax.Array | None


def sample_token(key: jax.Array, logits: jax.Array, temperature: jax.Array, top_p: jax.Array) -> jax.Array:
    """Draw one token per row of ``logits`` ``[B, V]`` with temperature and nucleus (top-p) filtering.

    Top-p keeps the smallest set of most likely tokens whose probability reaches
    ``top_p`` (Holtzman et al. 2020); ``temperature == 0`` returns the argmax.
    """
    temperature = jnp.asarray(temperature, jnp.float32)
    scaled = logits / jnp.maximum(temperature, 1e-6)
    ordered = jnp.sort(scaled, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(ordered, axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    kept = jnp.sum(mass_before < top_p, axis=-1, keepdims=True)  # >= 1: the top token is always kept
    threshold = jnp.take_along_axis(ordered, kept - 1, axis=-1)
    filtered = jnp.where(scaled < threshold, -jnp.inf, scaled)
    sampled = jax.random.categorical(key, filtered, axis=-1)
    return jnp.where(temperature > 0, sampled, jnp.argmax(logits, axis=-1)).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("config", "max_new_tokens", "capture", "samples"))
def generate(
    config: LMConfig,
    params,
    prompt: jax.Array,
    prompt_valid: jax.Array,
    key: jax.Array,
    *,
    max_new_tokens: int,
    temperature: jax.Array | float = 1.0,
    top_p: jax.Array | float = 1.0,
    steer: Steering | None = None,
    eos_id: jax.Array | int = -1,
    capture: int | None = None,
    samples: int = 1,
) -> Generation:
    """Sample ``max_new_tokens`` tokens after each left-padded prompt.

    Args:
      config: the model's :class:`LMConfig` (static).
      params: the model's parameters.
      prompt: ``[B, Tp]`` token ids, left-padded.
      prompt_valid: ``[B, Tp]`` false at padding.
      key: PRNG key.
      max_new_tokens: continuation length ``N`` (static).
      temperature, top_p: sampling controls (0 temperature = greedy).
      steer: optional :class:`Steering` with ``positions=None``; applied from the last prompt token on.
      eos_id: generation stops (pads with it) after this token; -1 for none.
      capture: block whose residual at the last prompt token is returned (EAST's ``z_t``).
      samples: continuations per prompt (static); the prompt is prefilled once and its cache
        shared, so ``tokens`` is ``[B * samples, N]`` with the samples of prompt ``b`` in rows
        ``b * samples ... (b + 1) * samples - 1``.
    """
    if steer is not None and steer.positions is not None:
        raise ValueError("generate() chooses the steered positions itself; pass a Steering with positions=None.")
    model = DecoderLM(config)
    batch, prompt_len = prompt.shape
    valid = jnp.concatenate([prompt_valid.astype(bool), jnp.ones((batch, max_new_tokens), bool)], axis=1)
    cache = init_cache(config, batch, prompt_len + max_new_tokens, valid)
    positions = jnp.maximum(jnp.cumsum(prompt_valid.astype(jnp.int32), axis=1) - 1, 0)
    prefill_steer = None
    if steer is not None:
        prefill_steer = steer.replace(positions=jnp.arange(prompt_len) == prompt_len - 1)
    out = model.apply({"params": params}, prompt, positions=positions, cache=cache, steer=prefill_steer, capture=capture)
    repeat = lambda x, axis=0: jnp.repeat(x, samples, axis=axis)  # noqa: E731
    cache = out.cache._replace(keys=repeat(out.cache.keys, 1), values=repeat(out.cache.values, 1),
                               valid=repeat(out.cache.valid))
    positions = repeat(positions)
    keys = jax.random.split(key, max_new_tokens)
    first = sample_token(keys[0], repeat(out.logits[:, -1]), temperature, top_p)
    done = first == eos_id

    def step(carry, step_key):
        cache, token, position, done = carry
        o = model.apply({"params": params}, token[:, None], positions=position[:, None], cache=cache, steer=steer)
        new = jnp.where(done, eos_id, sample_token(step_key, o.logits[:, 0], temperature, top_p))
        return (o.cache, new, position + 1, done | (new == eos_id)), new

    _, rest = jax.lax.scan(step, (cache, first, positions[:, -1] + 1, done), keys[1:])
    tokens = jnp.concatenate([first[:, None], rest.T], axis=1)
    activation = None if capture is None else out.residual[:, -1]
    return Generation(tokens, activation)

"""The object :func:`mnemax.agents.llm.load` returns: config, params and tokenizer of one LM, with text helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.agents.llm.checkpoint import read_folder, write_folder
from mnemax.agents.llm.config import LMConfig
from mnemax.agents.llm.model import DecoderLM, Steering
from mnemax.agents.llm.sampling import Generation, generate


class LanguageModel:
    """A decoder-only LM ready to score and sample.

    Attributes:
      config: :class:`LMConfig`.
      params: Flax parameters (float32).
      tokenizer: a ``tokenizers.Tokenizer``, read from ``tokenizer_file`` the first time
        it is used, or None for a model without one. Only :meth:`encode`,
        :meth:`decode` and :meth:`save` need it; logits and generation work on token ids.
    """

    def __init__(self, config: LMConfig, params, tokenizer=None, *, tokenizer_file: str | Path | None = None):
        self.config = config
        self.params = params
        self._tokenizer = tokenizer
        self._tokenizer_file = None if tokenizer_file is None else Path(tokenizer_file)
        self.module = DecoderLM(config)
        self._logits = jax.jit(lambda p, t, s: self.module.apply({"params": p}, t, steer=s))

    def apply(self, params, tokens: jax.Array, steer: Steering | None = None) -> jax.Array:
        """Logits ``[B, T, vocab]`` (float32) of ``tokens`` ``[B, T]`` under ``params``, optionally steered."""
        tokens = jnp.asarray(tokens, jnp.int32)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be [B, T] integers, got shape {tokens.shape}.")
        if self.config.family == "gpt2" and tokens.shape[1] > self.config.max_positions:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the model's {self.config.max_positions} positions.")
        return self._logits(params, tokens, steer)

    def logits(self, tokens: jax.Array, steer: Steering | None = None) -> jax.Array:
        """Logits ``[B, T, vocab]`` (float32) of ``tokens`` ``[B, T]`` under the model's own params."""
        return self.apply(self.params, tokens, steer)

    def generate(
        self,
        prompt: jax.Array,
        key: jax.Array,
        *,
        max_new_tokens: int,
        prompt_valid: jax.Array | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        steer: Steering | None = None,
        stop_at_eos: bool = True,
        capture: int | None = None,
        samples: int = 1,
    ) -> Generation:
        """Sample continuations of left-padded ``prompt`` ``[B, Tp]``; see :func:`~mnemax.agents.llm.sampling.generate`."""
        prompt = jnp.asarray(prompt, jnp.int32)
        total = prompt.shape[1] + max_new_tokens
        if self.config.family == "gpt2" and total > self.config.max_positions:
            raise ValueError(f"Prompt plus max_new_tokens is {total} tokens, beyond the model's "
                             f"{self.config.max_positions} positions; shorten the prompt or max_new_tokens.")
        if prompt_valid is None:
            prompt_valid = jnp.ones(prompt.shape, bool)
        eos = self.config.eos_token_id if stop_at_eos and self.config.eos_token_id is not None else -1
        return generate(
            self.config, self.params, prompt, prompt_valid, key, max_new_tokens=max_new_tokens,
            temperature=temperature, top_p=top_p, steer=steer, eos_id=eos, capture=capture, samples=samples,
        )

    # --- text -------------------------------------------------------------------------------------
    @property
    def tokenizer(self):
        """The tokenizer, read from ``tokenizer_file`` on first access; None when there is none."""
        if self._tokenizer is None and self._tokenizer_file is not None and self._tokenizer_file.exists():
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(self._tokenizer_file))
        return self._tokenizer

    def _require_tokenizer(self):
        if self.tokenizer is None:
            where = "" if self._tokenizer_file is None else f" ({self._tokenizer_file} is missing)"
            raise FileNotFoundError(
                f"This model has no tokenizer{where}; token ids work without one (logits, generate), "
                "but text needs tokenizer.json: add it to the model folder or pass a tokenizers.Tokenizer."
            )
        return self._tokenizer

    def encode(self, texts: Sequence[str], length: int | None = None, multiple: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Left-padded token ids ``[B, Tp]`` and validity mask ``[B, Tp]`` for ``texts``.

        ``length`` fixes ``Tp``; otherwise ``Tp`` is the longest prompt rounded up to a
        multiple of ``multiple`` (so prompts of varying length share a few compiled programs).
        """
        encoded = [e.ids for e in self._require_tokenizer().encode_batch(list(texts))]
        longest = max(len(ids) for ids in encoded)
        length = -(-longest // multiple) * multiple if length is None else length
        if longest > length:
            raise ValueError(f"A prompt has {longest} tokens, more than length={length}; raise length.")
        tokens = np.zeros((len(encoded), length), np.int32)
        valid = np.zeros((len(encoded), length), bool)
        for row, ids in enumerate(encoded):
            if ids:
                tokens[row, length - len(ids):] = ids
                valid[row, length - len(ids):] = True
        return tokens, valid

    def decode(self, tokens: np.ndarray) -> list[str]:
        """Text of each row of ``tokens`` ``[B, N]``, cut at the first EOS."""
        tokenizer = self._require_tokenizer()
        texts = []
        for row in np.asarray(tokens).tolist():
            if self.config.eos_token_id is not None and self.config.eos_token_id in row:
                row = row[: row.index(self.config.eos_token_id)]
            texts.append(tokenizer.decode(row))
        return texts

    def save(self, path: str | Path) -> Path:
        """Write this model as a Hugging Face-format folder that :func:`load` and ``transformers`` read.

        A model without a tokenizer is written without ``tokenizer.json``.
        """
        return write_folder(path, self.config, self.params, self.tokenizer)


def load(path: str | Path) -> LanguageModel:
    """Load a Hugging Face-format folder (``config.json``, ``*.safetensors``; ``tokenizer.json`` for text).

    Supported ``model_type``: ``gpt2``, ``llama``, ``mistral``, ``qwen2`` (SmolLM is ``llama``).
    Nothing is fetched from a hub: ``path`` is a local folder. A folder without
    ``tokenizer.json`` loads; :meth:`LanguageModel.encode` and ``decode`` then
    raise one error naming the missing file.
    """
    config, params, tokenizer_file = read_folder(path)
    return LanguageModel(config, jax.tree.map(jnp.asarray, params), tokenizer_file=tokenizer_file)

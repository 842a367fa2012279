"""A Flax decoder-only LM (GPT-2 and Llama families) that loads Hugging Face-format folders, samples under
``jax.jit`` with a KV cache, and takes activation steering as a pure argument.

    lm = load("path/to/folder")                       # config.json, *.safetensors, tokenizer.json
    logits = lm.logits(tokens)                         # [B, T, vocab], float32
    steered = lm.apply(lm.params, tokens, steer=Steering(layer=8, vector=u, coeff=2.0))
"""

from mnemax.agents.llm.config import LMConfig, config_from_hf, config_to_hf, gpt2_config
from mnemax.agents.llm.language_model import LanguageModel, load
from mnemax.agents.llm.model import DecoderLM, KVCache, LMOutput, Steering, init_cache
from mnemax.agents.llm.sampling import Generation, generate, sample_token
from mnemax.agents.llm.training import train_lm, word_level_tokenizer

__all__ = [
    "DecoderLM",
    "Generation",
    "KVCache",
    "LMConfig",
    "LMOutput",
    "LanguageModel",
    "Steering",
    "config_from_hf",
    "config_to_hf",
    "generate",
    "gpt2_config",
    "init_cache",
    "load",
    "sample_token",
    "train_lm",
    "word_level_tokenizer",
]

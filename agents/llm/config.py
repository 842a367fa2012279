"""One configuration for the two decoder-only families that :mod:`mnemax.agents.llm` runs.

* ``gpt2``: learned absolute positions, LayerNorm, GELU MLP, biases
  everywhere, tied input/output embeddings.
* ``llama``: rotary positions (RoPE), RMSNorm, SwiGLU MLP, grouped-query
  attention; Hugging Face ``model_type`` values ``llama``, ``mistral``,
  ``qwen2`` (SmolLM checkpoints say ``llama``).

:func:`config_from_hf` reads a Hugging Face ``config.json`` dictionary and
:func:`config_to_hf` writes one back, so a model trained in mnemax is a folder
that both :func:`mnemax.agents.llm.load` and ``transformers`` open.
"""

from __future__ import annotations

import dataclasses
from typing import Any

FAMILIES = ("gpt2", "llama")
# Hugging Face model_type -> family.
MODEL_TYPES = {"gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama"}


@dataclasses.dataclass(frozen=True)
class LMConfig:
    """Sizes and architecture switches of a decoder-only LM (hashable: static under ``jax.jit``).

    Attributes:
      family: ``"gpt2"`` or ``"llama"``.
      vocab_size, d_model, n_layers, n_heads: the usual sizes.
      n_kv_heads: key/value heads (grouped-query attention); ``n_heads`` means plain multi-head.
      head_dim: width of one head (``d_model // n_heads`` unless the checkpoint says otherwise).
      d_ff: hidden width of the MLP.
      max_positions: length of the learned position table (``gpt2``); informational for ``llama``.
      norm_eps: epsilon of LayerNorm / RMSNorm.
      rope_theta: RoPE base (``llama``).
      tie_embeddings: the output projection is the transposed token embedding.
      qkv_bias, out_bias, mlp_bias: which projections carry a bias.
      activation: ``"gelu_tanh"``, ``"gelu"`` or ``"silu"``.
      sliding_window: attention window in tokens (Mistral), or None for full causal attention.
      model_type: the Hugging Face ``model_type`` written back by :func:`config_to_hf`.
      bos_token_id, eos_token_id: special tokens, if the checkpoint names them.
    """

    family: str
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_ff: int
    max_positions: int = 2048
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    activation: str = "silu"
    sliding_window: int | None = None
    model_type: str = "llama"
    bos_token_id: int | None = None
    eos_token_id: int | None = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {self.family!r}.")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads}) for grouped-query attention."
            )
        if self.family == "llama" and self.head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {self.head_dim}.")
        if self.activation not in ("gelu_tanh", "gelu", "silu"):
            raise ValueError(f"activation must be 'gelu_tanh', 'gelu' or 'silu', got {self.activation!r}.")


def gpt2_config(vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_positions: int, **extra) -> LMConfig:
    """A GPT-2-family config with the usual 4x MLP."""
    return LMConfig(
        family="gpt2", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=n_heads, head_dim=d_model // n_heads, d_ff=4 * d_model, max_positions=max_positions,
        tie_embeddings=True, qkv_bias=True, out_bias=True, mlp_bias=True, activation="gelu_tanh",
        model_type="gpt2", **extra,
    )


_GPT2_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def _rope_theta(hf: dict[str, Any]) -> float:
    """RoPE base from either the flat (``rope_theta``) or the nested (``rope_parameters``) spelling."""
    scaling = hf.get("rope_scaling") or {}
    params = hf.get("rope_parameters") or {}
    rope_type = scaling.get("rope_type", scaling.get("type")) or params.get("rope_type") or "default"
    if rope_type != "default":
        raise ValueError(
            f"RoPE scaling {rope_type!r} is not supported; only plain RoPE ('default') checkpoints load."
        )
    return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def config_from_hf(hf: dict[str, Any]) -> LMConfig:
    """Translate a Hugging Face ``config.json`` dictionary into an :class:`LMConfig`.

    Raises:
      ValueError: for a ``model_type`` outside :data:`MODEL_TYPES` or an option mnemax does not implement.
    """
    model_type = hf.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(
            f"Unsupported architecture model_type={model_type!r}; mnemax loads {sorted(MODEL_TYPES)}."
        )
    special = {"bos_token_id": hf.get("bos_token_id"), "eos_token_id": _first(hf.get("eos_token_id"))}
    if model_type == "gpt2":
        act = hf.get("activation_function", "gelu_new")
        if act not in _GPT2_ACTIVATIONS:
            raise ValueError(f"Unsupported GPT-2 activation_function {act!r}; use one of {sorted(_GPT2_ACTIVATIONS)}.")
        if hf.get("scale_attn_by_inverse_layer_idx") or hf.get("reorder_and_upcast_attn"):
            raise ValueError("GPT-2 options scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported.")
        d_model, n_heads = hf["n_embd"], hf["n_head"]
        return LMConfig(
            family="gpt2", vocab_size=hf["vocab_size"], d_model=d_model, n_layers=hf["n_layer"],
            n_heads=n_heads, n_kv_heads=n_heads, head_dim=d_model // n_heads,
            d_ff=hf.get("n_inner") or 4 * d_model, max_positions=hf["n_positions"],
            norm_eps=hf.get("layer_norm_epsilon", 1e-5), tie_embeddings=True, qkv_bias=True,
            out_bias=True, mlp_bias=True, activation=_GPT2_ACTIVATIONS[act], model_type="gpt2", **special,
        )
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"Unsupported hidden_act {hf.get('hidden_act')!r} for model_type {model_type!r}; expected 'silu'.")
    d_model, n_heads = hf["hidden_size"], hf["num_attention_heads"]
    window = hf.get("sliding_window")
    if model_type == "qwen2" and not hf.get("use_sliding_window", False):
        window = None
    return LMConfig(
        family="llama", vocab_size=hf["vocab_size"], d_model=d_model, n_layers=hf["num_hidden_layers"],
        n_heads=n_heads, n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        head_dim=hf.get("head_dim") or d_model // n_heads, d_ff=hf["intermediate_size"],
        max_positions=hf.get("max_position_embeddings", 2048), norm_eps=hf.get("rms_norm_eps", 1e-6),
        rope_theta=_rope_theta(hf), tie_embeddings=bool(hf.get("tie_word_embeddings", model_type == "qwen2")),
        qkv_bias=model_type == "qwen2" or bool(hf.get("attention_bias", False)),
        out_bias=bool(hf.get("attention_bias", False)) and model_type != "qwen2",
        mlp_bias=bool(hf.get("mlp_bias", False)), activation="silu", sliding_window=window,
        model_type=model_type, **special,
    )


def config_to_hf(config: LMConfig) -> dict[str, Any]:
    """The Hugging Face ``config.json`` dictionary for ``config`` (the inverse of :func:`config_from_hf`)."""
    special = {k: v for k, v in (("bos_token_id", config.bos_token_id), ("eos_token_id", config.eos_token_id)) if v is not None}
    if config.family == "gpt2":
        act = {"gelu_tanh": "gelu_new", "gelu": "gelu"}[config.activation]
        return {
            "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": config.vocab_size,
            "n_embd": config.d_model, "n_layer": config.n_layers, "n_head": config.n_heads,
            "n_inner": config.d_ff, "n_positions": config.max_positions, "n_ctx": config.max_positions,
            "layer_norm_epsilon": config.norm_eps, "activation_function": act, "tie_word_embeddings": True,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0, **special,
        }
    return {
        "model_type": config.model_type, "architectures": ["LlamaForCausalLM"], "vocab_size": config.vocab_size,
        "hidden_size": config.d_model, "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads, "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim, "intermediate_size": config.d_ff,
        "max_position_embeddings": config.max_positions, "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta, "tie_word_embeddings": config.tie_embeddings,
        "attention_bias": config.qkv_bias, "mlp_bias": config.mlp_bias, "hidden_act": "silu", **special,
    }


def _first(value):
    """``eos_token_id`` may be a list in newer checkpoints; mnemax stops on the first one."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value

"""Hugging Face-format folders <-> Flax parameters of :class:`~mnemax.agents.llm.model.DecoderLM`.

A folder holds ``config.json``, one or more ``*.safetensors`` files and,
for text, ``tokenizer.json`` (read lazily with the ``tokenizers`` package). Tensor names follow
``transformers``' GPT-2 (``h.{i}.attn.c_attn.weight``, Conv1D ``[in, out]``,
fused q/k/v) and Llama (``model.layers.{i}.self_attn.q_proj.weight``,
Linear ``[out, in]``) layouts; :func:`hf_to_flax` and :func:`flax_to_hf`
translate them, and every tensor is checked against the shape the config
implies, by name.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import jax
import numpy as np
from flax import traverse_util

from mnemax.agents.llm.config import LMConfig, config_from_hf, config_to_hf
from mnemax.agents.llm.model import DecoderLM

# Buffers some checkpoints carry that are not parameters.
_IGNORED_SUFFIXES = ("attn.bias", "attn.masked_bias", "rotary_emb.inv_freq")


def _gpt2_names(config: LMConfig) -> dict[tuple[str, ...], tuple[str, bool]]:
    """Flax path -> (HF name, transpose) for every GPT-2 tensor except the fused q/k/v."""
    names = {("embed", "embedding"): ("wte.weight", False), ("pos_embed", "embedding"): ("wpe.weight", False),
             ("final_norm", "scale"): ("ln_f.weight", False), ("final_norm", "bias"): ("ln_f.bias", False)}
    for i in range(config.n_layers):
        b, h = f"block_{i}", f"h.{i}."
        for norm, hf in (("attn_norm", "ln_1"), ("mlp_norm", "ln_2")):
            names[(b, norm, "scale")] = (h + hf + ".weight", False)
            names[(b, norm, "bias")] = (h + hf + ".bias", False)
        for path, hf in ((("attn", "o"), "attn.c_proj"), (("mlp", "fc"), "mlp.c_fc"), (("mlp", "proj"), "mlp.c_proj")):
            names[(b, *path, "kernel")] = (h + hf + ".weight", False)
            names[(b, *path, "bias")] = (h + hf + ".bias", False)
    return names


def _llama_names(config: LMConfig) -> dict[tuple[str, ...], tuple[str, bool]]:
    """Flax path -> (HF name, transpose) for every Llama-family tensor."""
    names = {("embed", "embedding"): ("model.embed_tokens.weight", False),
             ("final_norm", "scale"): ("model.norm.weight", False)}
    if not config.tie_embeddings:
        names[("lm_head", "kernel")] = ("lm_head.weight", True)
    projections = [("attn", p, f"self_attn.{p}_proj", config.qkv_bias) for p in "qkv"]
    projections += [("attn", "o", "self_attn.o_proj", config.out_bias)]
    projections += [("mlp", p, f"mlp.{p}_proj", config.mlp_bias) for p in ("gate", "up", "down")]
    for i in range(config.n_layers):
        b, h = f"block_{i}", f"model.layers.{i}."
        names[(b, "attn_norm", "scale")] = (h + "input_layernorm.weight", False)
        names[(b, "mlp_norm", "scale")] = (h + "post_attention_layernorm.weight", False)
        for module, proj, hf, bias in projections:
            names[(b, module, proj, "kernel")] = (h + hf + ".weight", True)
            if bias:
                names[(b, module, proj, "bias")] = (h + hf + ".bias", False)
    return names


def expected_shapes(config: LMConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flax path -> shape of every parameter of ``DecoderLM(config)`` (no memory allocated)."""
    shapes = jax.eval_shape(lambda: DecoderLM(config).init(jax.random.PRNGKey(0), np.zeros((1, 1), np.int32)))
    return {path: leaf.shape for path, leaf in traverse_util.flatten_dict(shapes["params"]).items()}


def _take(tensors: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in tensors:
        raise ValueError(f"The checkpoint has no tensor {name!r}; it does not match its config.json.")
    return tensors[name]


def hf_to_flax(config: LMConfig, tensors: dict[str, np.ndarray]) -> dict:
    """Translate Hugging Face tensors (names without a ``transformer.`` prefix) into Flax params.

    Raises:
      ValueError: naming the tensor that is missing or whose shape differs from the config's.
    """
    shapes = expected_shapes(config)
    flat, source = {}, {}
    names = _gpt2_names(config) if config.family == "gpt2" else _llama_names(config)
    for path, (name, transpose) in names.items():
        value = _take(tensors, name)
        flat[path], source[path] = (value.T if transpose else value), name
    if config.family == "gpt2":
        d = config.d_model
        for i in range(config.n_layers):
            for suffix, leaf in (("weight", "kernel"), ("bias", "bias")):
                name = f"h.{i}.attn.c_attn.{suffix}"
                fused = _take(tensors, name)
                if fused.shape[-1] != 3 * d:
                    raise ValueError(f"Tensor {name!r} has shape {fused.shape}; the config implies last axis {3 * d}.")
                for j, proj in enumerate("qkv"):
                    flat[(f"block_{i}", "attn", proj, leaf)] = fused[..., j * d:(j + 1) * d]
                    source[(f"block_{i}", "attn", proj, leaf)] = name
    for path, shape in shapes.items():
        if path not in flat:
            raise ValueError(f"No tensor maps to parameter {'/'.join(path)}; the checkpoint is incomplete.")
        if flat[path].shape != shape:
            raise ValueError(
                f"Tensor {source[path]!r} has shape {tuple(flat[path].shape)} but the config implies {shape}; "
                "config.json and the weights disagree."
            )
    used = set(source.values())
    unused = [n for n in tensors if n not in used and not n.endswith(_IGNORED_SUFFIXES) and n != "lm_head.weight"]
    if unused:
        warnings.warn(f"Ignoring {len(unused)} checkpoint tensors mnemax does not use, e.g. {unused[:3]}.", stacklevel=2)
    return traverse_util.unflatten_dict({p: np.asarray(v, np.float32) for p, v in flat.items()})


def flax_to_hf(config: LMConfig, params: dict) -> dict[str, np.ndarray]:
    """Translate Flax params into Hugging Face tensors (the inverse of :func:`hf_to_flax`)."""
    flat = {p: np.asarray(v, np.float32) for p, v in traverse_util.flatten_dict(params).items()}
    names = _gpt2_names(config) if config.family == "gpt2" else _llama_names(config)
    tensors = {name: np.ascontiguousarray(flat[path].T if transpose else flat[path])
               for path, (name, transpose) in names.items()}
    if config.family == "gpt2":
        for i in range(config.n_layers):
            for suffix, leaf in (("weight", "kernel"), ("bias", "bias")):
                parts = [flat[(f"block_{i}", "attn", proj, leaf)] for proj in "qkv"]
                tensors[f"h.{i}.attn.c_attn.{suffix}"] = np.ascontiguousarray(np.concatenate(parts, axis=-1))
    return tensors


def read_folder(path: str | Path) -> tuple[LMConfig, dict, Path]:
    """Read ``config.json`` and the ``*.safetensors`` shards of a folder.

    Returns ``(config, params, tokenizer_file)``: the tokenizer is not read here
    (the folder may have none; logits from token ids do not need it), only
    located, so that :class:`~mnemax.agents.llm.LanguageModel` reads it when
    text is first encoded or decoded.

    Raises:
      FileNotFoundError: naming the missing file.
      ValueError: for an unsupported architecture, a malformed or incomplete config.json (naming
        the missing key), a truncated or empty safetensors file (naming it), or a tensor that does
        not fit the config.
    """
    from safetensors.flax import load_file

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass a Hugging Face-format model folder.")
    config_file, tokenizer_file = folder / "config.json", folder / "tokenizer.json"
    shards = sorted(folder.glob("*.safetensors"))
    if not config_file.exists():
        raise FileNotFoundError(f"{config_file} is missing; a model folder needs its config.json.")
    if not shards:
        raise FileNotFoundError(f"No *.safetensors file in {folder}; convert .bin weights to safetensors first.")
    config = _read_config(config_file)
    tensors = {}
    for shard in shards:
        try:
            loaded = load_file(str(shard))
        except Exception as error:  # noqa: BLE001 - safetensors raises its own SafetensorError (and OSError)
            raise ValueError(
                f"{shard} is not a readable safetensors file ({error}); it is probably truncated or empty, "
                "so download or save it again."
            ) from error
        for name, value in loaded.items():
            tensors[name.removeprefix("transformer.")] = np.asarray(value.astype("float32"))
    return config, hf_to_flax(config, tensors), tokenizer_file


def _read_config(config_file: Path) -> LMConfig:
    """``config.json`` -> :class:`LMConfig`, naming the file for bad JSON and the key a config lacks."""
    try:
        hf = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{config_file} is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            "fix the file or download it again."
        ) from error
    if not isinstance(hf, dict):
        raise ValueError(f"{config_file} holds a JSON {type(hf).__name__}, not an object of config keys; download it again.")
    try:
        return config_from_hf(hf)
    except KeyError as error:
        key = error.args[0]
        raise ValueError(
            f"{config_file} lacks the key {key!r}, which a model_type={hf.get('model_type')!r} config needs; "
            "add it or download the complete config.json."
        ) from error


def write_folder(path: str | Path, config: LMConfig, params: dict, tokenizer) -> Path:
    """Write a Hugging Face-format folder (``config.json``, ``model.safetensors``, and ``tokenizer.json`` unless None)."""
    from safetensors.numpy import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_to_hf(config), indent=2))
    save_file(flax_to_hf(config, params), str(folder / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save(str(folder / "tokenizer.json"))
    return folder

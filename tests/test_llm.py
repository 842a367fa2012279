"""The Flax LM: Hugging Face parity, loading errors, KV-cache decoding, sampling, and steering as an argument."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemax.agents.llm import (
    DecoderLM,
    LanguageModel,
    LMConfig,
    Steering,
    config_from_hf,
    config_to_hf,
    gpt2_config,
    load,
    sample_token,
    word_level_tokenizer,
)

VOCAB = 48
TOKENIZER_WORDS = [f"w{i}" for i in range(VOCAB - 3)]  # + <pad>, <eos>, <unk> = VOCAB ids

TINY = {
    "gpt2": gpt2_config(VOCAB, 32, 2, 4, max_positions=64, eos_token_id=1),
    "llama": LMConfig(family="llama", vocab_size=VOCAB, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                      head_dim=8, d_ff=48, tie_embeddings=False, eos_token_id=1),
}


def _random_model(family: str, seed: int = 0) -> LanguageModel:
    config = TINY[family]
    params = DecoderLM(config).init(jax.random.PRNGKey(seed), jnp.zeros((1, 4), jnp.int32))["params"]
    # Larger weights than the 0.02 init so that logits differ visibly between positions.
    params = jax.tree.map(lambda p: p * 10.0 if p.ndim == 2 else p, params)
    return LanguageModel(config, params, word_level_tokenizer(TOKENIZER_WORDS))


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request) -> LanguageModel:
    return _random_model(request.param)


TOKENS = np.random.default_rng(0).integers(3, VOCAB, size=(2, 10)).astype(np.int32)


# ---------------------------------------------------------------- Hugging Face parity
@pytest.fixture(scope="module", params=["gpt2", "llama", "mistral", "qwen2"])
def hf_pair(request, tmp_path_factory):
    """A tiny random transformers model saved to a folder, and the same folder loaded by mnemax."""
    torch = pytest.importorskip("torch", reason="Hugging Face parity needs torch (dev extra: torch==2.13.0)")
    transformers = pytest.importorskip("transformers", reason="Hugging Face parity needs transformers (dev extra)")
    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB, eos_token_id=1, bos_token_id=1, initializer_range=0.3)
    if request.param == "gpt2":
        hf_config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, resid_pdrop=0.0,
                                            embd_pdrop=0.0, attn_pdrop=0.0, **common)
    else:  # grouped-query attention (4 query heads, 2 key/value heads)
        llama_like = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, rope_theta=500.0, **common)
        if request.param == "llama":  # untied head
            hf_config = transformers.LlamaConfig(tie_word_embeddings=False, **llama_like)
        elif request.param == "mistral":  # a window of 4 tokens, shorter than the 10-token inputs
            hf_config = transformers.MistralConfig(sliding_window=4, head_dim=8, **llama_like)
        else:  # Qwen2: biases on q, k and v (not o), tied embeddings
            hf_config = transformers.Qwen2Config(tie_word_embeddings=True, **llama_like)
    reference = transformers.AutoModelForCausalLM.from_config(hf_config).eval()
    folder = tmp_path_factory.mktemp(f"hf_{request.param}")
    reference.save_pretrained(folder)
    word_level_tokenizer(TOKENIZER_WORDS).save(str(folder / "tokenizer.json"))
    return torch, reference, load(folder)


def test_logits_match_transformers(hf_pair):
    torch, reference, lm = hf_pair
    with torch.no_grad():
        expected = reference(torch.tensor(TOKENS, dtype=torch.long)).logits.numpy()
    got = np.asarray(lm.logits(TOKENS))
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(expected).max() > 0.5, "the reference logits are too small for the comparison to mean anything"
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_greedy_generation_matches_transformers(hf_pair):
    torch, reference, lm = hf_pair
    prompt = TOKENS[:, :5]
    reference.generation_config.eos_token_id = None  # compare all 8 tokens, EOS included
    with torch.no_grad():
        expected = reference.generate(torch.tensor(prompt, dtype=torch.long), max_new_tokens=8, do_sample=False,
                                      pad_token_id=0).numpy()[:, 5:]
    got = lm.generate(prompt, jax.random.PRNGKey(0), max_new_tokens=8, temperature=0.0, stop_at_eos=False).tokens
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_saved_folder_loads_in_transformers(model, tmp_path):
    """A model written by mnemax is a Hugging Face folder: transformers reads it and computes the same logits."""
    torch = pytest.importorskip("torch", reason="needs torch (dev extra: torch==2.13.0)")
    transformers = pytest.importorskip("transformers", reason="needs transformers (dev extra)")
    reference = transformers.AutoModelForCausalLM.from_pretrained(model.save(tmp_path / "m")).eval()
    with torch.no_grad():
        expected = reference(torch.tensor(TOKENS, dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(np.asarray(model.logits(TOKENS)), expected, rtol=0, atol=1e-4)


# ---------------------------------------------------------------- loading and saving
def test_save_load_roundtrip_keeps_logits(model, tmp_path):
    loaded = load(model.save(tmp_path / "m"))
    assert loaded.config == model.config
    np.testing.assert_allclose(np.asarray(loaded.logits(TOKENS)), np.asarray(model.logits(TOKENS)), atol=1e-5)
    assert loaded.decode(loaded.encode(["w1 w2"])[0]) == ["w1 w2"]


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory):
    return _random_model("llama").save(tmp_path_factory.mktemp("saved") / "m")


def test_folder_without_tokenizer_gives_logits_and_names_the_file_only_for_text(saved_folder, tmp_path):
    import shutil

    folder = shutil.copytree(saved_folder, tmp_path / "copy")
    (folder / "tokenizer.json").unlink()
    lm = load(folder)
    reference = load(saved_folder)
    np.testing.assert_allclose(np.asarray(lm.logits(TOKENS)), np.asarray(reference.logits(TOKENS)), atol=1e-6)
    assert lm.generate(TOKENS[:, :3], jax.random.PRNGKey(0), max_new_tokens=2).tokens.shape == (2, 2)
    assert lm.tokenizer is None
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json is missing\); token ids work"):
        lm.encode(["w1 w2"])
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        lm.decode(TOKENS)
    # Saving such a model writes weights and config only; the folder loads again.
    np.testing.assert_allclose(np.asarray(load(lm.save(tmp_path / "again")).logits(TOKENS)),
                               np.asarray(lm.logits(TOKENS)), atol=1e-6)


def test_tokenizer_is_read_on_first_use(saved_folder, tmp_path):
    import shutil

    folder = shutil.copytree(saved_folder, tmp_path / "copy")
    lm = load(folder)
    assert lm._tokenizer is None  # not read by load
    assert lm.decode(lm.encode(["w1 w2"])[0]) == ["w1 w2"]


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors"])
def test_missing_file_is_named(saved_folder, tmp_path, missing):
    import shutil

    folder = shutil.copytree(saved_folder, tmp_path / "copy")
    (folder / missing).unlink()
    expected = "safetensors" if missing == "model.safetensors" else missing
    with pytest.raises(FileNotFoundError, match=expected):
        load(folder)


def test_unsupported_architecture_is_named(saved_folder, tmp_path):
    import shutil

    folder = shutil.copytree(saved_folder, tmp_path / "copy")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(ValueError, match="Unsupported architecture model_type='bert'"):
        load(folder)


def test_shape_mismatch_names_the_tensor(saved_folder, tmp_path):
    import shutil

    folder = shutil.copytree(saved_folder, tmp_path / "copy")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 40}))
    with pytest.raises(ValueError, match=r"Tensor .model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight. has shape"):
        load(folder)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_config_roundtrips_through_hf_json(family):
    assert config_from_hf(config_to_hf(TINY[family])) == TINY[family]


def test_rope_scaling_is_refused():
    hf = config_to_hf(TINY["llama"])
    with pytest.raises(ValueError, match="RoPE scaling 'llama3' is not supported"):
        config_from_hf({**hf, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})


# ---------------------------------------------------------------- KV cache and sampling
def test_cached_greedy_decoding_equals_full_forward(model):
    """Greedy tokens from the cache equal argmax of full-sequence logits, re-run token by token."""
    prompt = TOKENS[:, :4]
    got = np.asarray(model.generate(prompt, jax.random.PRNGKey(0), max_new_tokens=6, temperature=0.0,
                                    stop_at_eos=False).tokens)
    sequence = prompt
    for _ in range(6):
        next_token = np.asarray(model.logits(sequence))[:, -1].argmax(-1)
        sequence = np.concatenate([sequence, next_token[:, None]], axis=1)
    np.testing.assert_array_equal(got, sequence[:, 4:])


def test_left_padding_does_not_change_generation(model):
    """A batch of prompts of different lengths, left-padded, decodes as each prompt alone."""
    short, long = TOKENS[0, :3], TOKENS[1, :7]
    prompt = np.zeros((2, 7), np.int32)
    prompt[0, 4:], prompt[1] = short, long
    valid = np.zeros((2, 7), bool)
    valid[0, 4:], valid[1] = True, True
    batched = model.generate(prompt, jax.random.PRNGKey(0), max_new_tokens=5, prompt_valid=valid,
                             temperature=0.0, stop_at_eos=False, capture=1)
    for row, alone in enumerate((short, long)):
        single = model.generate(alone[None], jax.random.PRNGKey(0), max_new_tokens=5, temperature=0.0,
                                stop_at_eos=False, capture=1)
        np.testing.assert_array_equal(np.asarray(batched.tokens[row]), np.asarray(single.tokens[0]))
        np.testing.assert_allclose(np.asarray(batched.activation[row]), np.asarray(single.activation[0]), atol=1e-4)


def test_samples_share_one_prefill(model):
    """``samples=3`` returns 3 continuations per prompt, in prompt-major order; greedy ones equal ``samples=1``."""
    kwargs = dict(max_new_tokens=4, temperature=0.0, stop_at_eos=False)
    one = np.asarray(model.generate(TOKENS[:, :4], jax.random.PRNGKey(0), **kwargs).tokens)
    three = np.asarray(model.generate(TOKENS[:, :4], jax.random.PRNGKey(0), samples=3, **kwargs).tokens)
    np.testing.assert_array_equal(three, np.repeat(one, 3, axis=0))


def test_generation_stops_at_eos():
    lm = _random_model("gpt2")
    logits = np.asarray(lm.logits(TOKENS[:, :3]))[:, -1]
    # Make the first greedy token EOS by choosing it as the eos id; all later tokens must be EOS too.
    eos = int(logits[0].argmax())
    lm_eos = LanguageModel(gpt2_config(VOCAB, 32, 2, 4, max_positions=64, eos_token_id=eos), lm.params)
    out = np.asarray(lm_eos.generate(TOKENS[:1, :3], jax.random.PRNGKey(0), max_new_tokens=5, temperature=0.0).tokens)
    np.testing.assert_array_equal(out, np.full((1, 5), eos))


@given(seed=st.integers(0, 2**16))
def test_top_p_keeps_the_smallest_nucleus(seed):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(64, 6)) * 3, jnp.float32)
    probs = np.asarray(jax.nn.softmax(logits, -1))
    top = probs.max(-1)
    # top_p below the largest probability keeps only the argmax.
    drawn = np.asarray(sample_token(jax.random.PRNGKey(seed), logits, 1.0, jnp.asarray(top.min() * 0.99)))
    np.testing.assert_array_equal(drawn, probs.argmax(-1))
    # Any top_p: every drawn token lies in the nucleus.
    top_p = 0.7
    drawn = np.asarray(sample_token(jax.random.PRNGKey(seed + 1), logits, 1.0, top_p))
    order = np.argsort(-probs, -1)
    mass_before = np.cumsum(np.take_along_axis(probs, order, -1), -1) - np.take_along_axis(probs, order, -1)
    rank = np.argmax(order == drawn[:, None], -1)
    assert (np.take_along_axis(mass_before, rank[:, None], -1)[:, 0] < top_p).all()


def test_sampling_follows_the_softmax_and_zero_temperature_is_greedy():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.2]] * 4000))
    drawn = np.asarray(sample_token(jax.random.PRNGKey(0), logits, 1.0, 1.0))
    np.testing.assert_allclose(np.bincount(drawn, minlength=3) / 4000, [0.5, 0.3, 0.2], atol=0.03)
    assert (np.asarray(sample_token(jax.random.PRNGKey(0), logits, 0.0, 1.0)) == 0).all()


# ---------------------------------------------------------------- steering
def test_zero_coefficient_leaves_logits_unchanged(model):
    vector = jax.random.normal(jax.random.PRNGKey(1), (model.config.d_model,))
    plain = np.asarray(model.logits(TOKENS))
    steered = np.asarray(model.apply(model.params, TOKENS, steer=Steering(0, vector, 0.0)))
    # Equal up to float rounding: the steered program is compiled (and fused) separately.
    np.testing.assert_allclose(steered, plain, rtol=0, atol=1e-5)


@settings(max_examples=10)
@given(first=st.integers(0, TOKENS.shape[1] - 1), layer=st.integers(0, 1), coeff=st.floats(0.5, 5.0),
       seed=st.integers(0, 2**16))
def test_steering_changes_only_positions_from_the_first_steered_one(model, first, layer, coeff, seed):
    vector = jax.random.normal(jax.random.PRNGKey(seed), (model.config.d_model,))
    positions = jnp.arange(TOKENS.shape[1]) >= first
    plain = np.asarray(model.logits(TOKENS))
    steered = np.asarray(model.apply(model.params, TOKENS, steer=Steering(layer, vector, coeff, positions)))
    np.testing.assert_allclose(steered[:, :first], plain[:, :first], rtol=0, atol=1e-5)
    assert (np.abs(steered[:, first:] - plain[:, first:]).max(-1) > 1e-3).all()


def test_steering_layer_out_of_range_is_refused(model):
    with pytest.raises(ValueError, match="Steering layer 5 is outside"):
        model.apply(model.params, TOKENS, steer=Steering(5, jnp.zeros(model.config.d_model), 1.0))


def test_generate_with_zero_steering_equals_unsteered(model):
    kwargs = dict(max_new_tokens=5, temperature=0.0, stop_at_eos=False)
    plain = model.generate(TOKENS[:, :4], jax.random.PRNGKey(0), **kwargs).tokens
    steer = Steering(1, jax.random.normal(jax.random.PRNGKey(3), (model.config.d_model,)), 0.0)
    zero = model.generate(TOKENS[:, :4], jax.random.PRNGKey(0), steer=steer, **kwargs).tokens
    np.testing.assert_array_equal(np.asarray(zero), np.asarray(plain))
    strong = model.generate(TOKENS[:, :4], jax.random.PRNGKey(0), steer=steer.replace(coeff=50.0), **kwargs).tokens
    assert not np.array_equal(np.asarray(strong), np.asarray(plain))


@pytest.fixture(scope="module")
def saved_gpt2_folder(tmp_path_factory):
    return _random_model("gpt2").save(tmp_path_factory.mktemp("saved") / "gpt2")


@pytest.mark.parametrize("cut", [0, 5, 0.5])
def test_truncated_or_empty_safetensors_is_named(saved_folder, tmp_path, cut):
    import shutil

    folder = shutil.copytree(saved_folder, tmp_path / "copy")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    with pytest.raises(ValueError, match=r"model\.safetensors is not a readable safetensors file .*truncated or empty"):
        load(folder)


def test_malformed_config_json_is_named(saved_folder, tmp_path):
    import shutil

    folder = shutil.copytree(saved_folder, tmp_path / "copy")
    text = (folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON \(.* at line \d+"):
        load(folder)


@pytest.mark.parametrize("family, key", [("gpt2", "n_embd"), ("llama", "hidden_size")])
def test_a_missing_config_key_is_named(saved_folder, saved_gpt2_folder, tmp_path, family, key):
    import shutil

    folder = shutil.copytree(saved_gpt2_folder if family == "gpt2" else saved_folder, tmp_path / "copy")
    config = json.loads((folder / "config.json").read_text())
    del config[key]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"config\.json lacks the key '{key}', which a model_type="):
        load(folder)

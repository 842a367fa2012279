"""EAST: the text bandit, the parser, action entropy, the steering vector, the metrics, and (slow) the demonstration."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnemax.agents import east
from mnemax.agents.llm import DecoderLM, LanguageModel, gpt2_config, word_level_tokenizer

TASK = east.BanditTask(num_arms=3, horizon=6)


# ---------------------------------------------------------------- text and parsing
@given(arm=st.integers(0, 9), thought=st.text(alphabet="abc ,.", max_size=20), spaces=st.sampled_from(["", " ", "  "]))
def test_parse_action_reads_the_action_line(arm, thought, spaces):
    text = f"{thought} action{spaces}:{spaces}{arm + 1}"
    assert east.parse_action(text, 10) == arm
    assert east.parse_action(text, arm) is None  # out of range for fewer arms


@pytest.mark.parametrize("text", ["arm 2 looks best .", "action : none", "", "action : 0"])
def test_parse_action_refuses_text_without_a_valid_action(text):
    assert east.parse_action(text, 4) is None


def test_prompt_states_task_and_history():
    text = east.prompt_text(TASK, [(0, 5), (2, 7)])
    assert text.startswith("task : 3 arms , 6 steps")
    assert "arm 1 gave 5 , arm 3 gave 7" in text and text.endswith("thought :")
    assert "history : none" in east.prompt_text(TASK, [])


def test_every_demo_word_is_in_the_vocabulary():
    rng = np.random.default_rng(0)
    vocabulary = set(east.demo_vocabulary(TASK))
    for prompt, completion in east.teacher_transcripts(TASK, 5, rng):
        assert set(f"{prompt} {completion}".split()) <= vocabulary


# ---------------------------------------------------------------- entropy and the steering vector
def test_action_entropy():
    assert east.action_entropy(np.array([0, 0, 0, 0]), 3) == pytest.approx(0.0)
    assert east.action_entropy(np.array([0, 1, 2, -1, -1]), 3) == pytest.approx(math.log(3))
    assert east.action_entropy(np.array([[0, 1], [1, 1]]), 2) == pytest.approx([math.log(2), 0.0])
    assert east.action_entropy(np.array([-1, -1]), 2) == pytest.approx(0.0)


@given(seed=st.integers(0, 2**16))
def test_steering_vector_recovers_the_entropy_direction(seed):
    """Activations that move along d with the step's entropy, plus per-episode offsets and noise, give u ~ d."""
    rng = np.random.default_rng(seed)
    steps, episodes, width = 12, 8, 16
    direction = rng.normal(size=width)
    direction /= np.linalg.norm(direction)
    entropy = rng.uniform(0, 1.4, size=(steps, episodes))
    offsets = 5.0 * rng.normal(size=(1, episodes, width))  # removed by centring within each episode
    activations = offsets + entropy[..., None] * direction + 0.05 * rng.normal(size=(steps, episodes, width))
    u = east.steering_vector(activations, entropy)
    assert np.linalg.norm(u) == pytest.approx(1.0, abs=1e-5)
    assert u @ direction > 0.95


def test_steering_vector_refuses_constant_activations():
    with pytest.raises(ValueError, match="never varied"):
        east.steering_vector(np.ones((4, 2, 3)), np.ones((4, 2)))


def test_random_direction_has_the_same_norm():
    like = np.array([3.0, 4.0], np.float32)
    control = east.random_direction(jax.random.PRNGKey(0), like)
    assert np.linalg.norm(control) == pytest.approx(5.0, rel=1e-5) and not np.allclose(control, like)


# ---------------------------------------------------------------- metrics
def test_bandit_metrics_on_a_known_log():
    means = np.array([[1.0, 3.0], [2.0, 0.0]])  # best arms: 1 and 0
    actions = np.array([[0, 0], [0, 1], [1, 1], [1, 1]])  # [T=4, E=2]
    log = east.EpisodeLog(actions, np.zeros((4, 2)), np.array([[1.0, 0.0]] * 4), np.zeros((4, 2)),
                          np.zeros((4, 2), bool), None, "")
    m = east.bandit_metrics(log, means)
    assert m["distinct_arms"] == 2.0
    assert m["regret"] == pytest.approx((2 + 2) / 2 + (0 + 2 + 2 + 2) / 2)
    np.testing.assert_allclose(m["regret_by_step"], [1.0, 3.0, 4.0, 5.0])
    assert m["never_best_late"] == 0.5  # episode 1 never plays arm 0 in steps 2..3
    np.testing.assert_allclose(m["entropy_by_step"], 0.5)


# ---------------------------------------------------------------- the teacher and the runner
def test_teacher_is_over_confident():
    """It explores often at the second step and almost never late in the episode."""
    rng = np.random.default_rng(0)
    history = [(0, 5)]
    early = np.mean(["explore" in east.teacher_completion(TASK, history, rng)[0] for _ in range(400)])
    late = np.mean(["explore" in east.teacher_completion(TASK, history * 10, rng)[0] for _ in range(400)])
    assert 0.35 < early < 0.65 and late < 0.02


@pytest.fixture(scope="module")
def untrained_lm() -> LanguageModel:
    tokenizer = word_level_tokenizer(east.demo_vocabulary(TASK))
    config = gpt2_config(tokenizer.get_vocab_size(), 16, 1, 2, max_positions=256, eos_token_id=1)
    params = DecoderLM(config).init(jax.random.PRNGKey(0), np.zeros((1, 4), np.int32))["params"]
    return LanguageModel(config, params, tokenizer)


def test_run_bandit_counts_invalid_outputs_and_still_plays(untrained_lm):
    """An untrained model writes no valid action: every step is counted invalid, a random arm is played."""
    means = TASK.sample_means(np.random.default_rng(0), 2)
    log = east.run_bandit(untrained_lm, TASK, means, jax.random.PRNGKey(0), samples=3, capture=0,
                          max_new_tokens=4, max_resamples=1)
    assert log.actions.shape == (TASK.horizon, 2) and log.activations.shape == (TASK.horizon, 2, 16)
    assert log.forced.all() and (log.invalid == 1.0).all()
    assert ((0 <= log.actions) & (log.actions < TASK.num_arms)).all()
    assert ((0 <= log.rewards) & (log.rewards <= TASK.max_reward)).all()


# ---------------------------------------------------------------- the demonstration (slow)
DEMO_TASK = east.BanditTask()
DEMO_LAYER = 1
DEMO_BETAS = (0.0, 2.0, 4.0)  # the range where the demo model still writes valid actions


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demonstration model, trained once per test session and saved/loaded as a Hugging Face folder."""
    folder = tmp_path_factory.mktemp("east_demo") / "model"
    lm, losses = east.train_demo_model(DEMO_TASK, jax.random.PRNGKey(0), folder=folder)
    vector, _ = east.collect_steering_vector(lm, DEMO_TASK, DEMO_LAYER, jax.random.PRNGKey(1), episodes=16)
    results = east.evaluate(lm, DEMO_TASK, vector, DEMO_LAYER, jax.random.PRNGKey(2), betas=DEMO_BETAS,
                            temperatures=(), episodes=16)
    return lm, losses, results


@pytest.mark.slow
def test_demo_model_learns_the_teacher(demo):
    _, losses, results = demo
    assert losses[-100:].mean() < 0.5 * losses[:20].mean()
    assert results[east.Setting("steer", 0.0)]["invalid"] < 0.05


@pytest.mark.slow
def test_steering_raises_action_entropy_more_than_a_random_vector(demo):
    _, _, results = demo
    steered = [results[east.Setting("steer", b)]["entropy"] for b in DEMO_BETAS]
    control = [results[east.Setting("random", b)]["entropy"] for b in DEMO_BETAS]
    assert all(a < b for a, b in zip(steered, steered[1:])), f"entropy not increasing with beta: {steered}"
    assert steered[-1] - steered[0] > 0.1
    assert steered[-1] - steered[0] > 2 * abs(control[-1] - control[0]), (steered, control)

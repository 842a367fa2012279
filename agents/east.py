"""EAST: entropic activation steering of an LLM agent in a text bandit (Rahn, D'Oro & Bellemare, 2024).

The pieces, in the order a run uses them:

1. :class:`BanditTask` -- K arms with Gaussian rewards (rounded to integers, so
   every reward is one word), horizon T. :func:`prompt_text` states the task
   and the (action, reward) history; the agent writes a short thought, then
   ``action : k``; :func:`parse_action` reads ``k``.
2. :func:`run_bandit` -- plays E episodes at once. At each step it samples M
   completions per episode (default 25): the parsed actions give the step's
   action entropy (:func:`action_entropy`), the first valid one is played
   (an episode whose M samples are all invalid is re-sampled up to
   ``max_resamples`` times, then counted and given a random arm). With
   ``capture=l`` it records ``z_t``, the residual after block ``l`` at the
   last prompt token.
3. :func:`steering_vector` -- the paper's
   ``u = (1/Z) sum_k sum_t H_t^k (z_t^k - mean_t z^k)``, normalised to unit norm.
4. :func:`evaluate` -- plays the task with ``z + beta * u`` at every generation
   step (:class:`~mnemax.agents.llm.Steering`), with temperature scaling, and
   with random vectors of the same norm (the control), and reports
   :func:`bandit_metrics` for each.

The CPU demonstration (:func:`train_demo_model`) trains a small GPT-2-family
model on transcripts of an over-confident, mostly greedy agent
(:func:`teacher_completion`) and saves it as a Hugging Face-format folder.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.agents.llm import LanguageModel, Steering, gpt2_config, load, train_lm, word_level_tokenizer


# ----------------------------------------------------------------------------------------------
# The text bandit
# ----------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BanditTask:
    """A K-armed Gaussian bandit told in words.

    Attributes:
      num_arms: K; arms are called ``1..K`` in text, ``0..K-1`` in arrays.
      horizon: T steps per episode.
      reward_std: standard deviation of a reward around its arm's mean.
      mean_range: each episode draws its arm means uniformly in this range.
      max_reward: rewards are rounded and clipped to ``0..max_reward`` (one word each).
    """

    num_arms: int = 4
    horizon: int = 16
    reward_std: float = 2.0
    mean_range: tuple[float, float] = (2.0, 8.0)
    max_reward: int = 10

    def __post_init__(self):
        if self.num_arms < 2 or self.horizon < 2:
            raise ValueError(f"A bandit needs at least 2 arms and 2 steps, got {self.num_arms} arms, {self.horizon} steps.")

    def sample_means(self, rng: np.random.Generator, episodes: int) -> np.ndarray:
        """Arm means ``[E, K]``."""
        return rng.uniform(*self.mean_range, size=(episodes, self.num_arms))

    def sample_rewards(self, rng: np.random.Generator, means: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Integer rewards ``[E]`` for ``actions`` ``[E]`` (0-based) under ``means`` ``[E, K]``."""
        mean = np.take_along_axis(means, actions[:, None], axis=1)[:, 0]
        return np.clip(np.rint(mean + self.reward_std * rng.standard_normal(mean.shape)), 0, self.max_reward).astype(int)


def prompt_text(task: BanditTask, history: Sequence[tuple[int, int]]) -> str:
    """The prompt at a step: the task, the history of ``(arm, reward)`` (0-based arm), and a cue to think."""
    past = " , ".join(f"arm {a + 1} gave {r}" for a, r in history) if history else "none"
    return (
        f"task : {task.num_arms} arms , {task.horizon} steps , get the most reward . "
        f"history : {past} . thought :"
    )


_ACTION = re.compile(r"action\s*:?\s*(?:arm\s*)?(\d+)", re.IGNORECASE)


def parse_action(text: str, num_arms: int) -> int | None:
    """The 0-based arm of the first ``action : k`` line in ``text``, or None when absent or out of range."""
    match = _ACTION.search(text)
    if match is None:
        return None
    arm = int(match.group(1)) - 1
    return arm if 0 <= arm < num_arms else None


def action_entropy(actions: np.ndarray, num_arms: int) -> np.ndarray:
    """Entropy (nats) of the empirical distribution of ``actions`` ``[..., M]`` (-1 = invalid, ignored)."""
    counts = np.stack([(actions == a).sum(-1) for a in range(num_arms)], axis=-1).astype(float)
    total = np.maximum(counts.sum(-1, keepdims=True), 1.0)
    p = counts / total
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


# ----------------------------------------------------------------------------------------------
# The over-confident teacher whose transcripts train the demonstration model
# ----------------------------------------------------------------------------------------------
def teacher_completion(task: BanditTask, history: Sequence[tuple[int, int]], rng: np.random.Generator,
                       explore: float = 0.5, decay: float = 0.55) -> tuple[str, int]:
    """A thought and an action line of a mostly greedy agent, and its 0-based action.

    With no history it tries a random arm; afterwards it explores a random other
    arm with probability ``explore * decay**(t-1)`` and otherwise plays the arm
    with the best mean reward so far -- over-confident, it soon stops exploring.
    """
    if not history:
        arm = int(rng.integers(task.num_arms))
        thought = f"no data yet , try arm {arm + 1} ."
    else:
        sums, counts = np.zeros(task.num_arms), np.zeros(task.num_arms)
        for a, r in history:
            sums[a] += r
            counts[a] += 1
        best = int(np.argmax(np.where(counts > 0, sums / np.maximum(counts, 1), -np.inf)))
        if rng.random() < explore * decay ** (len(history) - 1):
            arm = int(rng.choice([a for a in range(task.num_arms) if a != best]))
            thought = f"not sure , explore arm {arm + 1} ."
        else:
            arm = best
            thought = f"arm {arm + 1} looks best ."
    return f"{thought} action : {arm + 1}", arm


def teacher_transcripts(task: BanditTask, episodes: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """``(prompt, completion)`` pairs of every step of ``episodes`` teacher episodes."""
    pairs = []
    for means in task.sample_means(rng, episodes):
        history = []
        for _ in range(task.horizon):
            completion, arm = teacher_completion(task, history, rng)
            pairs.append((prompt_text(task, history), completion))
            reward = int(task.sample_rewards(rng, means[None], np.array([arm]))[0])
            history.append((arm, reward))
    return pairs


def demo_vocabulary(task: BanditTask) -> list[str]:
    """Every word the prompts and the teacher write."""
    words = "task : arms , steps get the most reward . history none arm gave thought no data yet try not sure explore looks best action"
    numbers = [str(n) for n in range(max(task.max_reward, task.num_arms, task.horizon) + 1)]
    return words.split() + numbers


def train_demo_model(task: BanditTask, key: jax.Array, *, episodes: int = 3000, steps: int = 1000,
                     d_model: int = 64, n_layers: int = 2, n_heads: int = 4, folder: str | Path | None = None,
                     ) -> tuple[LanguageModel, np.ndarray]:
    """Train a small GPT-2-family LM on teacher transcripts; loss on the completions only.

    When ``folder`` is given the model is written there as a Hugging Face-format
    folder and read back with :func:`mnemax.agents.llm.load` (what a downloaded
    checkpoint goes through). Returns ``(model, losses[steps])``.
    """
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    tokenizer = word_level_tokenizer(demo_vocabulary(task))
    eos = tokenizer.token_to_id("<eos>")
    pairs = teacher_transcripts(task, episodes, rng)
    prompts = [e.ids for e in tokenizer.encode_batch([p for p, _ in pairs])]
    completions = [e.ids + [eos] for e in tokenizer.encode_batch([c for _, c in pairs])]
    length = max(len(p) + len(c) for p, c in zip(prompts, completions))
    tokens = np.zeros((len(pairs), length), np.int32)
    loss_mask = np.zeros((len(pairs), length), bool)
    for row, (p, c) in enumerate(zip(prompts, completions)):
        tokens[row, : len(p) + len(c)] = p + c
        loss_mask[row, len(p): len(p) + len(c)] = True
    config = gpt2_config(tokenizer.get_vocab_size(), d_model, n_layers, n_heads, max_positions=2 * length,
                         eos_token_id=eos, bos_token_id=eos)
    params, losses = train_lm(config, tokens, loss_mask, key, steps=steps)
    model = LanguageModel(config, params, tokenizer)
    if folder is not None:
        model.save(folder)
        model = load(folder)
    return model, losses


# ----------------------------------------------------------------------------------------------
# Playing the bandit with an LM
# ----------------------------------------------------------------------------------------------
class EpisodeLog(NamedTuple):
    """What :func:`run_bandit` records, time-major.

    Attributes:
      actions: ``[T, E]`` played arms (0-based).
      rewards: ``[T, E]``.
      entropy: ``[T, E]`` action entropy (nats) of the step's M sampled completions.
      invalid: ``[T, E]`` fraction of the step's completions with no valid action.
      forced: ``[T, E]`` true where every re-sample was invalid and a random arm was played.
      activations: ``[T, E, D]`` residual after block ``capture`` at the last prompt token, or None.
      completion: one example completion of the last step (for reading).
    """

    actions: np.ndarray
    rewards: np.ndarray
    entropy: np.ndarray
    invalid: np.ndarray
    forced: np.ndarray
    activations: np.ndarray | None
    completion: str


def run_bandit(lm: LanguageModel, task: BanditTask, means: np.ndarray, key: jax.Array, *,
               samples: int = 25, temperature: float = 1.0, top_p: float = 1.0,
               steer: Steering | None = None, capture: int | None = None,
               max_new_tokens: int = 12, max_resamples: int = 3, pad_multiple: int = 64) -> EpisodeLog:
    """Play ``E = len(means)`` episodes of ``task`` with ``lm``, ``samples`` completions per step.

    Prompts are left-padded to a multiple of ``pad_multiple`` tokens so a whole
    run compiles a handful of programs; temperature and steering strength are
    traced, so sweeping them reuses the programs.
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}.")
    episodes = len(means)
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 2**31 - 1)))
    histories: list[list[tuple[int, int]]] = [[] for _ in range(episodes)]
    log = {name: np.zeros((task.horizon, episodes)) for name in ("actions", "rewards", "entropy", "invalid", "forced")}
    activations, completion = [], ""
    for t in range(task.horizon):
        texts = [prompt_text(task, h) for h in histories]
        tokens, valid = lm.encode(texts, multiple=pad_multiple)
        chosen = np.full(episodes, -1)
        for attempt in range(max_resamples + 1):
            key, sample_key = jax.random.split(key)
            out = lm.generate(tokens, sample_key, max_new_tokens=max_new_tokens, prompt_valid=valid,
                              temperature=temperature, top_p=top_p, steer=steer, capture=capture, samples=samples)
            decoded = lm.decode(np.asarray(out.tokens))
            parsed = np.array([-1 if (a := parse_action(s, task.num_arms)) is None else a for s in decoded])
            parsed = parsed.reshape(episodes, samples)
            if attempt == 0:
                log["entropy"][t] = action_entropy(parsed, task.num_arms)
                log["invalid"][t] = (parsed < 0).mean(-1)
                completion = decoded[0]
                if capture is not None:
                    activations.append(np.asarray(out.activation))
            first_valid = np.where((parsed >= 0).any(-1), parsed[np.arange(episodes), (parsed >= 0).argmax(-1)], -1)
            chosen = np.where(chosen >= 0, chosen, first_valid)
            if (chosen >= 0).all():
                break
        log["forced"][t] = chosen < 0
        chosen = np.where(chosen >= 0, chosen, rng.integers(task.num_arms, size=episodes))
        rewards = task.sample_rewards(rng, means, chosen)
        log["actions"][t], log["rewards"][t] = chosen, rewards
        for h, a, r in zip(histories, chosen, rewards):
            h.append((int(a), int(r)))
    return EpisodeLog(
        actions=log["actions"].astype(int), rewards=log["rewards"], entropy=log["entropy"], invalid=log["invalid"],
        forced=log["forced"].astype(bool), activations=np.stack(activations) if capture is not None else None,
        completion=completion,
    )


# ----------------------------------------------------------------------------------------------
# The steering vector and its evaluation
# ----------------------------------------------------------------------------------------------
def steering_vector(activations: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """EAST's direction ``u`` ``[D]`` from activations ``[T, E, D]`` and action entropies ``[T, E]``.

    ``u = (1/Z) sum_k sum_t H_t^k (z_t^k - mean_t z^k)`` (Rahn et al. 2024, Sec. 3):
    activations are centred within each episode, weighted by the step's action
    entropy, summed over steps and episodes, and scaled to unit norm (``Z``).
    """
    activations, entropy = np.asarray(activations, np.float64), np.asarray(entropy, np.float64)
    if activations.shape[:2] != entropy.shape:
        raise ValueError(f"activations {activations.shape} and entropy {entropy.shape} must share [T, E].")
    centred = activations - activations.mean(axis=0, keepdims=True)
    direction = np.einsum("te,ted->d", entropy, centred)
    norm = np.linalg.norm(direction)
    if norm == 0:
        raise ValueError("The entropy-weighted activations sum to zero; the action entropy never varied.")
    return (direction / norm).astype(np.float32)


def random_direction(key: jax.Array, like: np.ndarray) -> np.ndarray:
    """A uniformly random direction with the norm of ``like`` (the control for a steering vector)."""
    v = np.asarray(jax.random.normal(key, np.shape(like)), np.float64)
    return (v / np.linalg.norm(v) * np.linalg.norm(like)).astype(np.float32)


def bandit_metrics(log: EpisodeLog, means: np.ndarray) -> dict[str, np.ndarray | float]:
    """Exploration and return statistics of a set of episodes.

    Returns a dict with ``entropy_by_step`` ``[T]`` (mean action entropy, nats),
    ``entropy`` (its mean), ``distinct_arms`` (mean number of arms tried per
    episode), ``regret_by_step`` ``[T]`` (mean cumulative regret), ``regret``
    (final), ``never_best_late`` (fraction of episodes that never play the best
    arm in the second half) and ``invalid`` (fraction of invalid completions).
    """
    horizon = log.actions.shape[0]
    best = means.argmax(-1)
    gap = means.max(-1)[None] - np.take_along_axis(means, log.actions.T, axis=1).T  # [T, E]
    late = log.actions[horizon // 2:]
    distinct = np.array([len(set(column)) for column in log.actions.T])
    return {
        "entropy_by_step": log.entropy.mean(-1),
        "entropy": float(log.entropy.mean()),
        "distinct_arms": float(distinct.mean()),
        "regret_by_step": np.cumsum(gap, axis=0).mean(-1),
        "regret": float(gap.sum(0).mean()),
        "never_best_late": float((late != best[None]).all(0).mean()),
        "invalid": float(log.invalid.mean()),
    }


class Setting(NamedTuple):
    """One row of an evaluation: ``kind`` is ``"steer"``, ``"temperature"`` or ``"random"``; ``value`` is beta or the temperature."""

    kind: str
    value: float


def evaluate(lm: LanguageModel, task: BanditTask, vector: np.ndarray, layer: int, key: jax.Array, *,
             betas: Sequence[float], temperatures: Sequence[float], episodes: int = 32, samples: int = 25,
             random_vectors: int = 2, **run_options) -> dict[Setting, dict]:
    """Metrics for steering with ``beta * vector``, for temperature scaling, and for random vectors of equal norm.

    All settings play the same arm means and the same random keys, so their
    differences come from the intervention. The random control is averaged over
    ``random_vectors`` directions.
    """
    means_key, run_key, control_key = jax.random.split(key, 3)
    means = task.sample_means(np.random.default_rng(int(jax.random.randint(means_key, (), 0, 2**31 - 1))), episodes)
    results = {}

    def play(steer, temperature):
        return bandit_metrics(run_bandit(lm, task, means, run_key, samples=samples, temperature=temperature,
                                         steer=steer, **run_options), means)

    for beta in betas:
        results[Setting("steer", float(beta))] = play(Steering(layer, jnp.asarray(vector), float(beta)), 1.0)
    for temperature in temperatures:
        results[Setting("temperature", float(temperature))] = play(None, float(temperature))
    controls = [random_direction(k, vector) for k in jax.random.split(control_key, random_vectors)]
    for beta in betas:
        runs = [play(Steering(layer, jnp.asarray(c), float(beta)), 1.0) for c in controls]
        results[Setting("random", float(beta))] = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *runs)
    return results


def collect_steering_vector(lm: LanguageModel, task: BanditTask, layer: int, key: jax.Array, *,
                            episodes: int = 32, samples: int = 25, **run_options) -> tuple[np.ndarray, EpisodeLog]:
    """Play unsteered episodes recording ``z_t`` at ``layer`` and return ``(u, log)``."""
    means_key, run_key = jax.random.split(key)
    means = task.sample_means(np.random.default_rng(int(jax.random.randint(means_key, (), 0, 2**31 - 1))), episodes)
    log = run_bandit(lm, task, means, run_key, samples=samples, capture=layer, **run_options)
    return steering_vector(log.activations, log.entropy), log

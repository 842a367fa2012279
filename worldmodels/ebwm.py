"""The energy-based world model (EBWM, Gladstone et al. 2024; EBT, 2025) behind the WorldModel protocol.

Registered as ``ebwm`` (``world_model=ebwm``, ``configs/worldmodel/ebwm.yaml``).
Instead of predicting the next step directly, an
:class:`~mnemax.worldmodels.energy_transformer.EnergyTransformer` scores how well
a candidate ``y`` continues the observed steps, ``E(context, action, y)``, and a
prediction is ``steps`` gradient steps on the candidate ("thinking", EBT eq. 2)::

    y_0 = latest observation (+ noise),   y_{k+1} = y_k - alpha * clip(grad_y E(context, y_k))

The target vector ``y`` of step ``t + 1`` is ``[symlog obs_{t+1}, symlog r_{t+1}, c_{t+1}]``
(``Y = obs_size + 2``); observed tokens are ``[symlog obs_t, a_{t-1}]``, so acting
needs nothing but observations and actions. Training backpropagates the mean
squared error of every thinking step's candidate through the refinement
(second-order gradients: the update of ``y`` is itself a gradient of ``E``),
averaged over steps. Two recipes (``recipe``):

* ``system1``: ``thinking_steps`` fixed steps, the candidate detached between steps.
* ``system2``: a random number of steps in ``[min_thinking_steps, thinking_steps]``
  per batch, a step size drawn per sequence in ``[alpha / s, alpha * s]``
  (``s = alpha_spread``), and Langevin noise of std ``langevin_noise`` after each step.

``alpha`` is learned: ``alpha * exp(alpha_lr_scale * a)`` with ``a`` a parameter
starting at 0, so ``alpha_lr_scale`` acts as its own learning-rate multiplier.
Best-of-K (``candidates``): ``K`` noisy initial candidates are refined and the
one of lowest final energy kept (self-verification).

The state is a window of the last ``layers * (context - 1) + 1`` observed
tokens, enough for the last token's output to equal the sequence pass, plus
that output, the model's own embedding, which is what a policy reads.
At inference the number of thinking steps is a traced argument
(``jax.lax.fori_loop``), so changing it does not recompile.

With ``head="direct"`` the same transformer predicts ``y`` directly (MSE): the
same-size direct-prediction baseline; thinking settings are then unused.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from mnemax.worldmodels.batch import SequenceBatch
from mnemax.worldmodels.distributions import symexp, symlog
from mnemax.worldmodels.energy_transformer import EnergyTransformer, attention_layout
from mnemax.worldmodels.protocol import Imagination, Policy, Prediction
from mnemax.worldmodels.registry import register_world_model

RECIPES = ("system1", "system2")
HEADS = ("energy", "direct")
INITIAL_CANDIDATES = ("last", "noise")
DIFFERENTIATE = ("all", "last")


@dataclasses.dataclass(frozen=True)
class EBWMConfig:
    """The energy-based world model's settings (sized for CPU runs).

    hidden, layers, heads: the transformer's width, depth and attention heads.
    context: observed tokens a token attends to (itself included).
    thinking_steps: gradient steps on the candidate per prediction (System 2: the most).
    min_thinking_steps: System 2's fewest steps.
    alpha: the initial step size of a thinking step; alpha_lr_scale its learning-rate multiplier.
    alpha_spread: System 2 draws the step size in ``[alpha / s, alpha * s]``.
    langevin_noise: System 2's noise std added to the candidate after each step.
    recipe: ``system1`` or ``system2`` (module docstring).
    candidates: K of best-of-K at inference (lowest final energy wins).
    initial_candidate: ``last`` (the latest observation, reward 0, continue 1) or ``noise`` (zeros).
    candidate_noise: std of the Gaussian noise added to every initial candidate (spreads the K).
    grad_clamp: each element of ``grad_y E`` is clipped to ``[-grad_clamp, grad_clamp]``.
    differentiate: ``all`` backpropagates the loss through every thinking step's own gradient of E;
      ``last`` (EBT's truncated option) only through the last step's, which saves the second-order
      backward pass of the earlier steps (the loss still averages every step's error).
    head: ``energy`` (EBWM) or ``direct`` (same transformer, MSE on the next target).
    """

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    context: int = 16
    thinking_steps: int = 2
    min_thinking_steps: int = 1
    alpha: float = 1.0
    alpha_lr_scale: float = 1.0
    alpha_spread: float = 2.0
    langevin_noise: float = 0.0
    recipe: str = "system1"
    candidates: int = 1
    initial_candidate: str = "last"
    candidate_noise: float = 0.1
    grad_clamp: float = 10.0
    differentiate: str = "all"
    head: str = "energy"

    def __post_init__(self) -> None:
        for name in ("hidden", "layers", "heads", "thinking_steps", "min_thinking_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"EBWMConfig.{name} must be a positive integer, got {getattr(self, name)}.")
        if self.candidates < 1:
            raise ValueError(f"EBWMConfig.candidates is K of best-of-K and must be at least 1, got {self.candidates}.")
        if self.context < 2:
            raise ValueError(f"EBWMConfig.context counts observed tokens a token sees and must be at least 2, got {self.context}.")
        if self.hidden % self.heads:
            raise ValueError(f"EBWMConfig.hidden={self.hidden} must be a multiple of heads={self.heads}.")
        if self.min_thinking_steps > self.thinking_steps:
            raise ValueError(
                f"EBWMConfig.min_thinking_steps={self.min_thinking_steps} exceeds thinking_steps={self.thinking_steps}; "
                "System 2 draws its steps between the two."
            )
        for name in ("alpha", "alpha_lr_scale", "grad_clamp"):
            if not getattr(self, name) > 0:
                raise ValueError(f"EBWMConfig.{name} must be a positive number, got {getattr(self, name)}.")
        if not self.alpha_spread >= 1.0:
            raise ValueError(f"EBWMConfig.alpha_spread must be at least 1 (the range [alpha/s, alpha*s]), got {self.alpha_spread}.")
        for name in ("langevin_noise", "candidate_noise"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"EBWMConfig.{name} is a standard deviation and must be at least 0, got {getattr(self, name)}.")
        for name, valid in (("recipe", RECIPES), ("head", HEADS), ("initial_candidate", INITIAL_CANDIDATES),
                            ("differentiate", DIFFERENTIATE)):
            if getattr(self, name) not in valid:
                raise ValueError(f"EBWMConfig.{name} must be one of {', '.join(valid)}, got {getattr(self, name)!r}.")

    @property
    def window(self) -> int:
        """Observed tokens the state keeps: the receptive field of the last token through ``layers`` layers."""
        return self.layers * (self.context - 1) + 1


class EBWMState(NamedTuple):
    """The model's state per batch element, ``[B, ...]``.

    inputs: ``[B, M, D_in]`` the last ``M = window`` observed tokens ``[symlog obs, prev action]``, oldest first.
    valid: ``[B, M]`` float, 1 where the token belongs to the current episode.
    embedding: ``[B, hidden]`` the transformer's output at the latest token (what a policy reads).
    """

    inputs: jax.Array
    valid: jax.Array
    embedding: jax.Array


class Thought(NamedTuple):
    """A refined prediction: ``target [B, Y]`` and its ``energy [B]`` (best of K), with all K, ``refined [K, B, Y]`` and ``energies [K, B]``."""

    target: jax.Array
    energy: jax.Array
    energies: jax.Array
    refined: jax.Array


def target_vector(obs: jax.Array, rewards: jax.Array, continues: jax.Array) -> jax.Array:
    """``[..., Y]``: ``[symlog obs, symlog reward, continue]``, what the model predicts of a step."""
    return jnp.concatenate([symlog(obs), symlog(rewards)[..., None], continues[..., None]], axis=-1)


def think(energy: Callable[[jax.Array], jax.Array], y: jax.Array, alpha: jax.Array, clamp: float) -> tuple[jax.Array, jax.Array]:
    """One thinking step ``y - alpha * clip(grad_y E(y))``; ``energy(y [B, C, Y]) -> [B, C]``. Returns ``(y', E(y))``.

    Each energy depends on its own candidate only, so the gradient of their sum
    is every candidate's own gradient. Differentiable in everything, twice.
    """

    def total(candidate):
        energies = energy(candidate)
        return jnp.sum(energies), energies

    (_, energies), grad = jax.value_and_grad(total, has_aux=True)(y)
    return y - alpha * jnp.clip(grad, -clamp, clamp), energies


def swap_time(x: jax.Array) -> jax.Array:
    """``[T, B, ...] <-> [B, T, ...]``: batches are time-major, the transformer is batch-major."""
    return jnp.swapaxes(x, 0, 1)


@dataclasses.dataclass(frozen=True)
class EnergyWorldModel:
    """:class:`EBWMConfig`'s model for vector observations of ``obs_shape`` and actions of width ``action_size``."""

    config: EBWMConfig
    obs_shape: tuple[int, ...]
    action_size: int

    @property
    def targets(self) -> tuple[str, ...]:
        return ("observation", "reward", "continue")

    @property
    def obs_size(self) -> int:
        return self.obs_shape[0]

    @property
    def target_size(self) -> int:
        """``Y``: symlog observation, symlog reward, continue."""
        return self.obs_size + 2

    @property
    def net(self) -> EnergyTransformer:
        c = self.config
        return EnergyTransformer(c.hidden, c.layers, c.heads, c.context, self.target_size, c.head)

    def init(self, key: jax.Array) -> dict[str, Any]:
        """``{"net": transformer parameters, "log_alpha": scalar}``."""
        length = 2
        mask, distance = attention_layout(
            jnp.zeros((1, length), jnp.int32), jnp.arange(length), jnp.zeros((1, length), jnp.int32), self.config.context
        )
        net = self.net.init(
            key,
            jnp.zeros((1, length, self.obs_size + self.action_size)),
            jnp.zeros((1, length, self.target_size)),
            jnp.zeros((1, length, self.action_size)),
            mask,
            distance,
        )
        return {"net": net, "log_alpha": jnp.zeros((), jnp.float32)}

    def alpha(self, params: Any) -> jax.Array:
        """The learned step size of a thinking step."""
        return self.config.alpha * jnp.exp(self.config.alpha_lr_scale * params["log_alpha"])

    def apply(self, params, observed, candidates, candidate_actions, mask, distance):
        """The transformer: ``(observed outputs [B, T, hidden], energies [B, C] or predictions [B, C, Y])``."""
        return self.net.apply(params["net"], observed, candidates, candidate_actions, mask, distance)

    def observe_tokens(self, params, observed, mask, distance):
        """The observed tokens' pass alone: ``(outputs [B, T, hidden], per-layer keys and values)``."""
        return self.net.apply(params["net"], observed, mask, distance, method=EnergyTransformer.observe)

    def energy_over(self, params, cache, candidate_actions, mask, distance) -> Callable[[jax.Array], jax.Array]:
        """``y [B, C, Y] -> energies [B, C]`` over one observed pass's ``cache``: what a thinking step differentiates."""

        def energy(y: jax.Array) -> jax.Array:
            return self.net.apply(params["net"], cache, y, candidate_actions, mask, distance, method=EnergyTransformer.score)

        return energy

    # ------------------------------------------------------------------ state

    def initial_state(self, batch_size: int) -> EBWMState:
        window = self.config.window
        return EBWMState(
            jnp.zeros((batch_size, window, self.obs_size + self.action_size), jnp.float32),
            jnp.zeros((batch_size, window), jnp.float32),
            jnp.zeros((batch_size, self.config.hidden), jnp.float32),
        )

    def features(self, state: EBWMState) -> jax.Array:
        return state.embedding

    def observed_inputs(self, obs: jax.Array, prev_action: jax.Array) -> jax.Array:
        """An observed token ``[..., D_in]``: ``[symlog obs_t, a_{t-1}]``."""
        return jnp.concatenate([symlog(obs), prev_action], axis=-1)

    def embed_window(self, params: Any, inputs: jax.Array, valid: jax.Array) -> jax.Array:
        """The output at the last of ``inputs [B, M, D_in]`` (``valid [B, M]``): ``[B, hidden]``."""
        batch = inputs.shape[0]
        mask, distance = attention_layout(
            valid.astype(jnp.int32), jnp.zeros((0,), jnp.int32), jnp.zeros((batch, 0), jnp.int32), self.config.context
        )
        outputs, _ = self.observe_tokens(params, inputs, mask, distance)
        return outputs[:, -1]

    def push(self, params: Any, state: EBWMState, inputs: jax.Array, first: jax.Array) -> EBWMState:
        """The state after one more observed token ``inputs [B, D_in]``; ``first [B]`` forgets the older ones."""
        keep = 1.0 - first.astype(jnp.float32)[:, None]
        window = jnp.concatenate([state.inputs[:, 1:], inputs[:, None]], axis=1)
        valid = jnp.concatenate([state.valid[:, 1:] * keep, jnp.ones_like(keep)], axis=1)
        return EBWMState(window, valid, self.embed_window(params, window, valid))

    def observe_step(self, params, state, obs, prev_action, first, key) -> EBWMState:
        return self.push(params, state, self.observed_inputs(obs, prev_action), first)

    def observe_each(self, params: Any, state: EBWMState, batch: SequenceBatch, key: jax.Array) -> EBWMState:
        """The state after every step of ``batch``, ``[T, B, ...]``, from one parallel pass over ``[state window ; batch]``."""
        window, length = self.config.window, batch.resets.shape[0]
        sequence = jnp.concatenate([state.inputs, swap_time(self.observed_inputs(batch.obs, batch.prev_actions))], axis=1)
        resets = swap_time(batch.resets).astype(jnp.int32)  # [B, T]
        segments = jnp.concatenate([state.valid.astype(jnp.int32), 1 + jnp.cumsum(resets, axis=1)], axis=1)  # [B, M + T]
        valid = jnp.concatenate([state.valid, jnp.ones(resets.shape, jnp.float32)], axis=1)
        batch_size = resets.shape[0]
        mask, distance = attention_layout(
            segments, jnp.zeros((0,), jnp.int32), jnp.zeros((batch_size, 0), jnp.int32), self.config.context
        )
        outputs, _ = self.observe_tokens(params, sequence, mask, distance)  # [B, M + T, hidden]

        def window_after(t: jax.Array) -> tuple[jax.Array, jax.Array]:
            inputs = jax.lax.dynamic_slice_in_dim(sequence, t + 1, window, axis=1)
            own = jax.lax.dynamic_slice_in_dim(segments, t + 1, window, axis=1)
            kept = jax.lax.dynamic_slice_in_dim(valid, t + 1, window, axis=1) * (own == own[:, -1:])
            return inputs, kept

        inputs, kept = jax.vmap(window_after)(jnp.arange(length))  # [T, B, M, D_in], [T, B, M]
        return EBWMState(inputs, kept, swap_time(outputs[:, window:]))

    def observe(self, params: Any, state: EBWMState, batch: SequenceBatch, key: jax.Array) -> EBWMState:
        return jax.tree.map(lambda x: x[-1], self.observe_each(params, state, batch, key))

    # ------------------------------------------------------------------ prediction

    def initial_candidate(self, latest_obs: jax.Array) -> jax.Array:
        """``[..., Y]`` from the latest symlog observation ``[..., obs]``: it with reward 0 and continue 1, or zeros."""
        if self.config.initial_candidate == "noise":
            return jnp.zeros(latest_obs.shape[:-1] + (self.target_size,), jnp.float32)
        rest = jnp.broadcast_to(jnp.array([0.0, 1.0]), latest_obs.shape[:-1] + (2,))
        return jnp.concatenate([latest_obs, rest], axis=-1)

    def think_next(
        self, params: Any, state: EBWMState, action: jax.Array, key: jax.Array, steps: Any = None, candidates: int | None = None
    ) -> Thought:
        """Predict the next target ``[B, Y]`` after ``action [B, A]``: best of K candidates refined ``steps`` times.

        ``steps`` (default ``thinking_steps``) may be traced: one compilation serves every value.
        """
        config = self.config
        steps = config.thinking_steps if steps is None else steps
        count = config.candidates if candidates is None else candidates
        batch, window = state.valid.shape
        mask, distance = attention_layout(
            state.valid.astype(jnp.int32), jnp.array([window - 1]), jnp.ones((batch, 1), jnp.int32), config.context
        )
        actions = action[:, None]  # [B, 1, A]
        if config.head == "direct":
            _, predicted = self.apply(params, state.inputs, jnp.zeros((batch, 1, self.target_size)), actions, mask, distance)
            return Thought(predicted[:, 0], jnp.zeros((batch,)), jnp.zeros((1, batch)), predicted[None, :, 0])

        energy = self.energy_over(params, self.observe_tokens(params, state.inputs, mask, distance)[1], actions, mask, distance)
        alpha = self.alpha(params)
        base = self.initial_candidate(state.inputs[:, -1:, : self.obs_size])  # [B, 1, Y]
        starts = base[None] + config.candidate_noise * jax.random.normal(key, (count,) + base.shape)  # [K, B, 1, Y]

        def refine(y: jax.Array) -> tuple[jax.Array, jax.Array]:
            y = jax.lax.fori_loop(0, steps, lambda _, y: think(energy, y, alpha, config.grad_clamp)[0], y)
            return y[:, 0], energy(y)[:, 0]

        refined, energies = jax.vmap(refine)(starts)  # [K, B, Y], [K, B]
        best = jnp.argmin(energies, axis=0)  # [B]
        target = jnp.take_along_axis(refined, best[None, :, None], axis=0)[0]
        return Thought(target, jnp.min(energies, axis=0), energies, refined)

    def prediction(self, target: jax.Array) -> Prediction:
        """A target vector ``[..., Y]`` as a :class:`Prediction` (symlog observation, reward, continue in [0, 1])."""
        return Prediction(target[..., : self.obs_size], symexp(target[..., -2]), jnp.clip(target[..., -1], 0.0, 1.0))

    def imagine(self, params: Any, starts: EBWMState, policy: Policy, horizon: int, key: jax.Array) -> Imagination:
        def step(state: EBWMState, key: jax.Array):
            policy_key, think_key = jax.random.split(key)
            action = policy(state.embedding, policy_key)
            target = self.think_next(params, state, action, think_key).target
            inputs = jnp.concatenate([target[:, : self.obs_size], action], axis=-1)
            first = jnp.zeros(target.shape[:1], bool)
            return self.push(params, state, inputs, first), (state.embedding, action, target)

        keys = jax.random.split(key, horizon + 1)
        last, (features, actions, targets) = jax.lax.scan(step, starts, keys[:-1])
        features = jnp.concatenate([features, last.embedding[None]])
        actions = jnp.concatenate([actions, policy(last.embedding, keys[-1])[None]])
        predicted = self.prediction(jax.lax.stop_gradient(targets))
        return Imagination(features, actions, predicted.reward, predicted.continues)

    def imagine_open_loop(
        self, params: Any, state: EBWMState, actions: jax.Array, key: jax.Array, steps: Any = None
    ) -> Prediction:
        """Predictions ``[H, B, ...]`` under ``actions [H, B, A]``, each from the model's own previous prediction."""

        def step(state: EBWMState, inputs):
            action, key = inputs
            target = self.think_next(params, state, action, key, steps).target
            first = jnp.zeros(target.shape[:1], bool)
            return self.push(params, state, jnp.concatenate([target[:, : self.obs_size], action], -1), first), target

        _, targets = jax.lax.scan(step, state, (actions, jax.random.split(key, actions.shape[0])))
        return self.prediction(targets)

    # ------------------------------------------------------------------ training

    def loss(self, params: Any, batch: SequenceBatch, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """Mean squared error of every thinking step's candidate for step ``t + 1``, averaged over steps."""
        config = self.config
        targets = swap_time(target_vector(batch.obs, batch.rewards, batch.continues))  # [B, T, Y]
        observed = swap_time(self.observed_inputs(batch.obs, batch.prev_actions))  # [B, T, D_in]
        resets = swap_time(batch.resets)  # [B, T]
        segments = jnp.cumsum(resets.astype(jnp.int32), axis=1)
        length = resets.shape[1]
        actions = swap_time(batch.prev_actions)[:, 1:]  # a_t, t = 0 .. T-2: [B, T-1, A]
        goal = targets[:, 1:]  # [B, T-1, Y]
        weight = 1.0 - resets[:, 1:].astype(jnp.float32)  # a candidate across a reset has no target
        mask, distance = attention_layout(segments, jnp.arange(length - 1), segments[:, :-1], config.context)
        if config.head == "direct":
            _, predicted = self.apply(params, observed, jnp.zeros_like(goal), actions, mask, distance)
            candidates, active, energies = predicted[None], jnp.ones((1,), bool), jnp.zeros((1,) + weight.shape)
        else:
            candidates, active, energies = self.refine_for_training(params, observed, actions, mask, distance, key)
        errors = jnp.square(candidates - goal)  # [S, B, T-1, Y]
        total = jnp.maximum(jnp.sum(weight), 1.0)
        per_step = jnp.sum(jnp.mean(errors, axis=-1) * weight, axis=(1, 2)) / total  # [S]
        loss = jnp.sum(per_step * active) / jnp.sum(active)
        last = jnp.sum(active) - 1
        final = jnp.sum(errors[last] * weight[..., None], axis=(0, 1)) / total  # [Y]
        metrics = {
            "wm_loss": loss,
            "observation_error": jnp.mean(final[: self.obs_size]),
            "reward_error": final[-2],
            "continue_error": final[-1],
            "first_step_error": per_step[0],
            "energy_first": jnp.sum(energies[0] * weight) / total,
            "energy_last": jnp.sum(energies[last] * weight) / total,
            "alpha": self.alpha(params),
        }
        return loss, metrics

    def refine_for_training(self, params, observed, actions, mask, distance, key):
        """Every thinking step's candidates ``[S, B, C, Y]`` (``S = thinking_steps``), which steps ran ``[S]``, energies ``[S, B, C]``.

        System 1 runs all ``S`` steps; System 2 a random number of them (the
        steps past it are skipped, not computed and masked), with a step size
        drawn per sequence and Langevin noise. Candidates are detached between
        steps; each step's own gradient of ``E`` stays differentiable. The
        observed tokens run once; each step runs only the candidates over them.
        """
        config = self.config
        init_key, steps_key, alpha_key, noise_key = jax.random.split(key, 4)
        energy = self.energy_over(params, self.observe_tokens(params, observed, mask, distance)[1], actions, mask, distance)

        latest = observed[:, :-1, : self.obs_size]
        start = self.initial_candidate(latest)
        start = start + config.candidate_noise * jax.random.normal(init_key, start.shape)
        alpha = self.alpha(params)
        most = config.thinking_steps
        if config.recipe == "system2":
            steps = jax.random.randint(steps_key, (), config.min_thinking_steps, most + 1)
            spread = config.alpha_spread
            alpha = alpha * jax.random.uniform(alpha_key, (start.shape[0], 1, 1), minval=1.0 / spread, maxval=spread)
            noise = config.langevin_noise
        else:
            steps, noise = most, 0.0

        def thinking_step(y: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
            refined, energies = think(energy, jax.lax.stop_gradient(y), alpha, config.grad_clamp)
            return refined + noise * jax.random.normal(key, y.shape), energies

        def undifferentiated_step(y: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
            return jax.lax.stop_gradient(thinking_step(y, key))

        def skipped(y: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
            return y, jnp.zeros(y.shape[:-1], y.dtype)

        def step(y: jax.Array, inputs):
            index, key = inputs
            ran = index < steps
            if config.differentiate == "last":  # one of three branches runs; only the last step's has a backward pass
                branch = jnp.where(index == steps - 1, 0, jnp.where(ran, 1, 2))
                y, energies = jax.lax.switch(branch, (thinking_step, undifferentiated_step, skipped), y, key)
            elif config.recipe == "system2":
                y, energies = jax.lax.cond(ran, thinking_step, skipped, y, key)
            else:
                y, energies = thinking_step(y, key)
            return y, (y, ran, energies)

        _, (candidates, active, energies) = jax.lax.scan(step, start, (jnp.arange(most), jax.random.split(noise_key, most)))
        return candidates, active, energies


@register_world_model("ebwm", EBWMConfig)
def build_energy_world_model(config: EBWMConfig, obs_shape: tuple[int, ...], action_size: int) -> EnergyWorldModel:
    """The energy-based world model for vector observations; image observations are refused in one sentence."""
    if len(obs_shape) != 1:
        raise ValueError(
            f"world_model=ebwm predicts vector observations, got shape {tuple(obs_shape)}; images need a frozen "
            "encoder (an autoencoder trained first on the same data) that is not built yet, so use world_model=rssm for pixels."
        )
    return EnergyWorldModel(config, tuple(obs_shape), action_size)

"""What an agent or a probe may ask of a world model: the :class:`WorldModel` protocol.

Dreamer (``mnemax.agents.dreamer``) and the memory probes
(:mod:`mnemax.worldmodels.training`) use a world model only through these
methods, so any model that provides them plugs in: the latent sequence model
(RSSM, TSSM, S4WM by backbone) is one; an energy-based model that predicts the
next observation, reward and continue flag from its own embedding is another.

A model has a *state* per batch element, an opaque pytree with the batch as the
leading axis of every leaf: whatever it needs to go on observing, to imagine
from, and to compute the features a policy reads. For the latent sequence model
it is the backbone's carry with the last ``(h_t, z_t)``; for a model without
latents it may be a window of past embeddings.

Shapes: ``B`` batch, ``T`` time, ``N`` imagination starts, ``H`` horizon,
``A`` action input width (one-hot for discrete actions), ``F`` feature width.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol, runtime_checkable

import jax

from mnemax.worldmodels.batch import SequenceBatch

Policy = Callable[[jax.Array, jax.Array], jax.Array]
"""``policy(features [N, F], key) -> action input [N, A]``: how imagination picks actions."""

TARGETS = ("observation", "reward", "continue")
"""Everything a world model may predict; :attr:`WorldModel.targets` names the ones it does."""


class Prediction(NamedTuple):
    """What a model predicts for a state, any leading shape ``[...]``.

    observation: ``[..., *obs_shape]`` in the space the model's loss compares it in
      (symlog for vectors, [0, 1] for uint8 images); zeros if the model does not predict it.
    reward: ``[...]`` the expected reward of the step into the state.
    continues: ``[...]`` the probability that the episode goes on after the state.
    """

    observation: jax.Array
    reward: jax.Array
    continues: jax.Array


class Imagination(NamedTuple):
    """A rollout in the model under a policy, from ``N`` starts over ``H`` steps.

    features: ``[H + 1, N, F]`` what the policy read in each state (``features[0]`` at the start).
    actions: ``[H + 1, N, A]`` the action input chosen in each state (the last only aligns the arrays).
    rewards: ``[H, N]`` predicted reward of the step into state ``t + 1``.
    continues: ``[H, N]`` predicted probability that the episode goes on after state ``t + 1``.
    """

    features: jax.Array
    actions: jax.Array
    rewards: jax.Array
    continues: jax.Array


@runtime_checkable
class WorldModel(Protocol):
    """A world model built for one observation shape and action width (see the module docstring).

    Every method is a pure function of its arguments (``params`` explicit), so
    it runs under ``jit``, ``vmap`` and ``grad``.
    """

    obs_shape: tuple[int, ...]
    action_size: int

    @property
    def targets(self) -> tuple[str, ...]:
        """Which of :data:`TARGETS` the model predicts."""

    def init(self, key: jax.Array) -> Any:
        """Fresh parameters."""

    def initial_state(self, batch_size: int) -> Any:
        """The state before any observation, ``[B, ...]``."""

    def features(self, state: Any) -> jax.Array:
        """What a policy reads in ``state``: ``[B, F]``."""

    def observe_step(
        self, params: Any, state: Any, obs: jax.Array, prev_action: jax.Array, first: jax.Array, key: jax.Array
    ) -> Any:
        """Take in one step, ``obs [B, ...]``, ``prev_action [B, A]`` (``a_{t-1}``), ``first [B]``: the new state."""

    def observe(self, params: Any, state: Any, batch: SequenceBatch, key: jax.Array) -> Any:
        """Take in a sequence ``[T, B]`` from ``state``: the state after its last step (a probe's context)."""

    def observe_each(self, params: Any, state: Any, batch: SequenceBatch, key: jax.Array) -> Any:
        """Take in a sequence ``[T, B]`` from ``state``: the state after every step, ``[T, B, ...]`` (imagination starts)."""

    def imagine(self, params: Any, starts: Any, policy: Policy, horizon: int, key: jax.Array) -> Imagination:
        """Roll forward ``horizon`` steps from ``starts`` (``[N, ...]`` states) choosing actions with ``policy``."""

    def imagine_open_loop(self, params: Any, state: Any, actions: jax.Array, key: jax.Array) -> Prediction:
        """Roll forward under given ``actions [H, B, A]`` from ``state``: predictions ``[H, B, ...]``."""

    def loss(self, params: Any, batch: SequenceBatch, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The training loss (a scalar) on ``batch`` observed from :meth:`initial_state`, and scalar metrics."""


def flatten_time(tree: Any) -> Any:
    """``[T, B, ...] -> [T * B, ...]`` for every leaf: states after every step as imagination starts."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)

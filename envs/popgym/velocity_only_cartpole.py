"""VelocityOnlyCartPole: CartPole-v1 seeing the cart and pole velocities, not their positions.

Observation ``[x_dot, theta_dot]`` float32 in an unbounded box; action
``Discrete(2)``; reward ``1 / max_episode_length`` per step.

As in POPGym 1.0.7, the observation returned by ``reset`` is ``[x, theta]``
(the positions), not the velocities; every later observation is the
velocities. All four initial state components are drawn from U(-0.05, 0.05),
so the first observation has the same distribution either way, but it carries
no information about the initial velocities. ``velocities_at_reset=True``
shows the velocities there too.
"""

from __future__ import annotations

import math

from mnemax.envs.popgym.classic_control import PartiallyObservedCartPole

DIFFICULTIES = {
    "Easy": {"max_episode_length": 200},
    "Medium": {"max_episode_length": 400},
    "Hard": {"max_episode_length": 600},
}


class VelocityOnlyCartPole(PartiallyObservedCartPole):
    """CartPole observed through ``[x_dot, theta_dot]``; the agent must integrate them to know where it is."""

    observed = ("x_dot", "theta_dot")
    observation_high = (math.inf, math.inf)

    def __init__(self, max_episode_length: int = 200, velocities_at_reset: bool = False):
        super().__init__(max_episode_length=max_episode_length)
        self.observed_at_reset = None if velocities_at_reset else ("x", "theta")

"""PositionOnlyCartPole: CartPole-v1 seeing the cart position and pole angle, not their velocities.

Observation ``[x, theta]`` float32 in ``Box(-[4.8, 0.419], [4.8, 0.419])``;
action ``Discrete(2)``; reward ``1 / max_episode_length`` per step, so a
return of 1 means the pole stayed up for the whole episode.
"""

from __future__ import annotations

import math

from mnemax.envs.popgym.classic_control import PartiallyObservedCartPole

# Half-widths of POPGym's observation box: twice gymnasium's failure thresholds.
POSITION_HIGH = (2 * 2.4, 2 * (12 * 2 * math.pi / 360))

DIFFICULTIES = {
    "Easy": {"max_episode_length": 200},
    "Medium": {"max_episode_length": 400},
    "Hard": {"max_episode_length": 600},
}


class PositionOnlyCartPole(PartiallyObservedCartPole):
    """CartPole observed through ``[x, theta]``; the agent must infer velocities from memory."""

    observed = ("x", "theta")
    observation_high = POSITION_HIGH

    def __init__(self, max_episode_length: int = 200):
        super().__init__(max_episode_length=max_episode_length)

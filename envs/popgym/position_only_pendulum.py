"""PositionOnlyPendulum: Pendulum-v1 seeing ``[cos(theta), sin(theta)]``, not the angular velocity.

Observation float32 in ``Box(-1, 1, (2,))``; action ``Box(-2, 2, (1,))``
torque; reward gymnasium's ``-cost`` mapped from [-16.27, 0] onto [-1, 1] and
divided by ``max_episode_length``, so returns lie in [-1, 1]. Never
terminates; truncates after ``max_episode_length`` steps (shorter is harder:
less time to swing up).
"""

from __future__ import annotations

from mnemax.envs.popgym.classic_control import PartiallyObservedPendulum

DIFFICULTIES = {
    "Easy": {"max_episode_length": 200},
    "Medium": {"max_episode_length": 150},
    "Hard": {"max_episode_length": 100},
}


class PositionOnlyPendulum(PartiallyObservedPendulum):
    """Pendulum observed through the angle only; the agent must infer the angular velocity."""

    def __init__(self, max_episode_length: int = 200):
        super().__init__(max_episode_length=max_episode_length)

"""NoisyPositionOnlyCartPole: PositionOnlyCartPole with Gaussian noise on ``[x, theta]``.

The noise ``N(0, noise_sigma**2)`` is drawn afresh for every observation (the
first one included) and the result clipped to the observation box. The level
sets only the noise; every level keeps POPGym's 200-step episodes.
"""

from __future__ import annotations

from mnemax.envs.popgym.classic_control import PartiallyObservedCartPole
from mnemax.envs.popgym.position_only_cartpole import PositionOnlyCartPole

DIFFICULTIES = {
    "Easy": {"noise_sigma": 0.1},
    "Medium": {"noise_sigma": 0.2},
    "Hard": {"noise_sigma": 0.3},
}


class NoisyPositionOnlyCartPole(PositionOnlyCartPole):
    """CartPole observed through noisy ``[x, theta]``."""

    noisy = True

    def __init__(self, noise_sigma: float = 0.1, max_episode_length: int = 200):
        # Skip PositionOnlyCartPole.__init__, which fixes the noise at zero.
        PartiallyObservedCartPole.__init__(self, max_episode_length=max_episode_length, noise_sigma=noise_sigma)

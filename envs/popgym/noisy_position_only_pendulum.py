"""NoisyPositionOnlyPendulum: PositionOnlyPendulum with Gaussian noise on ``[cos(theta), sin(theta)]``.

The noise ``N(0, noise_sigma**2)`` is drawn afresh for every observation (the
first one included) and the result clipped to ``[-1, 1]``. The level sets
only the noise; every level keeps POPGym's 200-step episodes.
"""

from __future__ import annotations

from mnemax.envs.popgym.classic_control import PartiallyObservedPendulum
from mnemax.envs.popgym.position_only_pendulum import PositionOnlyPendulum

DIFFICULTIES = {
    "Easy": {"noise_sigma": 0.1},
    "Medium": {"noise_sigma": 0.2},
    "Hard": {"noise_sigma": 0.3},
}


class NoisyPositionOnlyPendulum(PositionOnlyPendulum):
    """Pendulum observed through a noisy angle."""

    noisy = True

    def __init__(self, noise_sigma: float = 0.1, max_episode_length: int = 200):
        # Skip PositionOnlyPendulum.__init__, which fixes the noise at zero.
        PartiallyObservedPendulum.__init__(self, max_episode_length=max_episode_length, noise_sigma=noise_sigma)

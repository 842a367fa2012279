"""mnemax.envs: environments by name, wrappers, a Brax adapter and an environment checker.

``make(name, **kwargs) -> (env, params)`` resolves gymnax ids, ``popgym/<Name>``,
``memory/<Name>``, ``grounded/<Name>``, ``brax/<name>``, the JAX suites (``craftax/``, ``navix/``,
``xminigrid/``, ``popgym_arcade/``, optional extras) and ``package.module:Class``; every env speaks gymnax's 1.x
API (six-value ``step``, auto-reset, ``info["final_observation"]``).
``check_env(env, params)`` tells a user, in plain words, what their env gets wrong.
"""

from mnemax.envs.brax_adapter import BRAX_ENV_NAMES, BraxEnv, BraxEnvParams, BraxEnvState
from mnemax.envs.checker import EnvCheckError, Finding, check_env
from mnemax.envs.registry import SUITES, make, names, register
from mnemax.envs.suite_adapter import MissingSuiteError, SuiteEnv, SuiteParams, SuiteState
from mnemax.envs.wrappers import (
    ClipAction,
    EpisodeStatistics,
    FlattenObservation,
    MetaRL,
    NormalizeObservation,
    NormalizeReward,
    ObservationPart,
    PrevActionReward,
    RunningMoments,
    merge_moments,
    observation_parts,
    pool_moments,
)

__all__ = [
    "BRAX_ENV_NAMES",
    "BraxEnv",
    "BraxEnvParams",
    "BraxEnvState",
    "ClipAction",
    "EnvCheckError",
    "EpisodeStatistics",
    "Finding",
    "FlattenObservation",
    "MetaRL",
    "NormalizeObservation",
    "NormalizeReward",
    "ObservationPart",
    "PrevActionReward",
    "RunningMoments",
    "SUITES",
    "MissingSuiteError",
    "SuiteEnv",
    "SuiteParams",
    "SuiteState",
    "check_env",
    "make",
    "merge_moments",
    "names",
    "observation_parts",
    "pool_moments",
    "register",
]

"""check_env: planted bugs are each named; correct envs (gymnax, Brax, POPGym, wrapped) pass."""

from __future__ import annotations

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import environment, spaces

from mnemax.envs import BRAX_ENV_NAMES, EnvCheckError, EpisodeStatistics, FlattenObservation, NormalizeObservation, check_env, make
from mnemax.envs.popgym import POPGYM_ENVS
from tiny_envs import CountingEnv

STEPS = 60  # rollout length for the tiny envs: several episodes of LIMIT steps
LIMIT = 8


class GoodEnv(CountingEnv):
    """A correct tiny env: a counter in [0, 1] observed with noise-free float32, Discrete(2) actions."""

    limit = LIMIT

    def step_env(self, key, state, action, params):
        state = environment.EnvState(time=state.time + 1)
        terminated = jnp.logical_and(action == 1, jax.random.uniform(key) < 0.1)
        return self.get_obs(state, params), state, jnp.float32(1.0), terminated, {}

    def get_obs(self, state, params=None, key=None):
        return jnp.full((3,), state.time / LIMIT, jnp.float32)

    def observation_space(self, params=None):
        return spaces.Box(0.0, 1.0, (3,), jnp.float32)


class ObservationOutOfBounds(GoodEnv):
    def get_obs(self, state, params=None, key=None):
        return jnp.full((3,), 5.0 * state.time / LIMIT, jnp.float32)


class ObservationDtypeChanges(GoodEnv):
    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)
        return obs.astype(jnp.int32), state


class NonScalarReward(GoodEnv):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, jnp.ones((1,)), terminated, info


class IntegerReward(GoodEnv):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, jnp.int32(1), terminated, info


class FloatTerminated(GoodEnv):
    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return obs, state, reward, terminated.astype(jnp.float32), info


class PythonControlFlow(GoodEnv):
    def step_env(self, key, state, action, params):
        if action == 1:  # a traced value in a Python `if`
            return super().step_env(key, state, action, params)
        return super().step_env(key, state, 0, params)


class HostRandomness(GoodEnv):
    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)
        return obs * np.float32(np.random.uniform(0.5, 1.0)), state


class OldStepApi(GoodEnv):
    """gymnax < 1.0: step returns (obs, state, reward, done, info)."""

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, info = self.step_env(key, state, action, params or self.default_params)
        return obs, state, reward, terminated, info


class NoFinalObservation(GoodEnv):
    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = super().step(key, state, action, params)
        return obs, state, reward, terminated, truncated, {}


class IgnoresTimeLimit(GoodEnv):
    def is_truncated(self, state, params):
        return jnp.zeros((), bool)

    def get_obs(self, state, params=None, key=None):
        return jnp.zeros((3,), jnp.float32)


class WrongObservationShape(GoodEnv):
    def observation_space(self, params=None):
        return spaces.Box(0.0, 1.0, (4,), jnp.float32)


class NoAutoReset(GoodEnv):
    def step(self, key, state, action, params=None):
        params = params or self.default_params
        obs, next_state, reward, terminated, info = self.step_env(key, state, action, params)
        truncated = self.is_truncated(next_state, params)
        info = {**info, "final_observation": obs}
        return obs, next_state, reward, terminated, truncated, info

    def get_obs(self, state, params=None, key=None):
        return jnp.zeros((3,), jnp.float32)


class TooManyActions(GoodEnv):
    """Handles two actions (see ``num_actions``) but offers five to the agent."""

    @property
    def num_actions(self) -> int:
        return 2

    def action_space(self, params=None):
        return spaces.Discrete(5)


class TracedActionCount(GoodEnv):
    """Sizes its action space with a JAX value (as Navix's ``Discrete.n`` is): fine eagerly, fails under jit."""

    def action_space(self, params=None):
        return spaces.Discrete(int(jnp.asarray(1) + 1))


class ResetReturnsThreeValues(GoodEnv):
    def reset_env(self, key, params):
        obs, state = super().reset_env(key, params)
        return obs, state, 0


class DictObservationEnv(GoodEnv):
    """A correct env with a Dict observation: float32 pixels and int32 tokens (not scaled, unlike uint8)."""

    def get_obs(self, state, params=None, key=None):
        return {"vision": super().get_obs(state, params), "tokens": jnp.stack([state.time, LIMIT - state.time]).astype(jnp.int32)}

    def observation_space(self, params=None):
        return spaces.Dict({"vision": super().observation_space(params), "tokens": spaces.Box(0, LIMIT, (2,), jnp.int32)})


class DictTokenOutOfBounds(DictObservationEnv):
    def observation_space(self, params=None):
        return spaces.Dict({"vision": GoodEnv.observation_space(self, params), "tokens": spaces.Box(0, 3, (2,), jnp.int32)})


class DictMissingKey(DictObservationEnv):
    def get_obs(self, state, params=None, key=None):
        return {"vision": super().get_obs(state, params)["vision"]}


class DictTokenDtype(DictObservationEnv):
    def observation_space(self, params=None):
        return spaces.Dict({"vision": GoodEnv.observation_space(self, params), "tokens": spaces.Box(0, LIMIT, (2,), jnp.uint8)})


PLANTED = [
    (DictTokenOutOfBounds, "observation_space", "of observation['tokens'] fell outside observation_space"),
    (DictMissingKey, "observation_space", "keys 'tokens' that Observations lack"),
    (DictTokenDtype, "observation_space", "Observations['tokens'] have dtype int32 but observation_space['tokens'] says uint8"),
    (TooManyActions, "action_space", "Discrete(5) but num_actions is 2"),
    (TracedActionCount, "api", "failed inside jax.jit with ConcretizationTypeError"),
    (ResetReturnsThreeValues, "api", "reset could not unpack a return value [ValueError: too many values to unpack (expected 2)]; with gymnax>=1.0 reset_env returns (obs, state)"),
    (ObservationOutOfBounds, "observation_space", "outside observation_space"),
    (ObservationDtypeChanges, "reset_step_mismatch", "differ in dtype or shape"),
    (NonScalarReward, "types", "reward has shape (1,)"),
    (IntegerReward, "types", "reward has dtype int32"),
    (FloatTerminated, "types", "terminated has dtype float32"),
    (PythonControlFlow, "control_flow", "Python control flow"),
    (HostRandomness, "determinism", "same key"),
    (OldStepApi, "api", "pre-1.0 gymnax API"),
    (NoFinalObservation, "final_observation", 'no "final_observation"'),
    (IgnoresTimeLimit, "time_limit", "max_steps_in_episode=8"),
    (WrongObservationShape, "observation_space", "shape (3,) but observation_space says (4,)"),
    (NoAutoReset, "auto_reset", "auto-reset"),
]


def test_a_correct_env_has_no_findings():
    assert check_env(GoodEnv(), num_steps=STEPS) == []


@pytest.mark.parametrize("env_class, check, phrase", PLANTED, ids=[case[0].__name__ for case in PLANTED])
def test_each_planted_bug_is_named_in_one_sentence(env_class, check, phrase):
    with pytest.raises(EnvCheckError) as raised:
        check_env(env_class(), num_steps=STEPS)
    findings = raised.value.findings
    matching = [f for f in findings if f.check == check and phrase in f.message]
    assert matching, f"no {check!r} finding mentioning {phrase!r} in {[f.message for f in findings]}"
    assert phrase in str(raised.value)
    # One sentence: a single line, ending in a full stop, naming a fix after the semicolon.
    for finding in matching:
        assert "\n" not in finding.message and finding.message.endswith(".") and ";" in finding.message


def test_a_correct_dict_observation_env_has_no_findings():
    assert check_env(DictObservationEnv(), num_steps=STEPS) == []


def test_raise_on_error_false_returns_every_finding():
    class TwoBugs(IntegerReward, WrongObservationShape):
        pass

    findings = check_env(TwoBugs(), num_steps=STEPS, raise_on_error=False)
    assert {f.check for f in findings} == {"types", "observation_space"}


# -- registered envs ------------------------------------------------------------

# Defects of gymnax 1.0.1 itself that the checker reports, asserted exactly so that a
# fix upstream (or a new defect) shows up here.
GYMNAX_DEFECTS = {
    "Catch-bsuite": {"observation_space"},  # float32 observations, int32 Box
    "MemoryChain-bsuite": {"observation_space"},  # context bits of -1 below the Box's low of 0
    "UmbrellaChain-bsuite": {"types", "observation_space"},  # int32 reward; final observation above high
    "FourRooms-misc": {"observation_space"},  # int32 observations, float32 Box
    "MetaMaze-misc": {"observation_space"},  # last reward (up to 10) above the Box's high of 1
    "BernoulliBandit-misc": {"types"},  # int32 reward
    "GaussianBandit-misc": {"observation_space"},  # Gaussian last reward (components 0 and 3) outside the Box
}
# MNISTBandit-bsuite downloads MNIST when constructed; tests run offline.
OFFLINE_GYMNAX = [name for name in gymnax.registered_envs if name != "MNISTBandit-bsuite"]
ONE_PER_FAMILY = ["CartPole-v1", "Breakout-MinAtar", "DeepSea-bsuite", "FourRooms-misc"]


def _check_registered(name: str, num_steps: int = 200) -> set[str]:
    env, params = make(name)
    return {f.check for f in check_env(env, params, num_steps=num_steps, raise_on_error=False)}


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_gymnax_envs_pass_one_per_family(name):
    assert _check_registered(name) == GYMNAX_DEFECTS.get(name, set())


@pytest.mark.slow
@pytest.mark.parametrize("name", OFFLINE_GYMNAX)
def test_every_gymnax_env_passes_except_known_upstream_defects(name):
    assert _check_registered(name, num_steps=300) == GYMNAX_DEFECTS.get(name, set())


@pytest.mark.slow
def test_brax_inverted_pendulum_passes():
    env, params = make("brax/inverted_pendulum", max_steps=30)
    assert check_env(env, params, num_steps=100) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in BRAX_ENV_NAMES if name != "inverted_pendulum"])
def test_brax_envs_pass(name):
    env, params = make(f"brax/{name}", max_steps=20)
    assert check_env(env, params, num_steps=50) == []


# Every POPGym family at one level in the default run; all levels under -m slow.
POPGYM_EASY = [name for name in POPGYM_ENVS if name.endswith("Easy")]


@pytest.mark.parametrize("name", POPGYM_EASY)
def test_popgym_envs_pass(name):
    env, params = POPGYM_ENVS[name]()
    assert check_env(env, params, num_steps=200) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in POPGYM_ENVS if name not in POPGYM_EASY])
def test_popgym_envs_pass_at_every_level(name):
    env, params = POPGYM_ENVS[name]()
    assert check_env(env, params, num_steps=300) == []


def test_wrapped_envs_pass():
    env, params = make("DeepSea-bsuite")
    assert check_env(EpisodeStatistics(NormalizeObservation(FlattenObservation(env))), params, num_steps=100) == []

"""``check_env``: run an environment the way training will and say, in plain words, what is wrong.

Training code jits and vmaps ``reset``/``step``, samples actions from
``action_space``, runs hundreds of steps under ``lax.scan`` and relies on
gymnax's auto-reset. An env that breaks any of that usually fails deep inside
JAX with an error that names ``lax.select`` or a tracer, not the env. The
checker runs the same operations on a small batch and turns what goes wrong
into one sentence per problem, naming the problem and the fix:

* the API: two values from ``reset``, six from ``step`` (gymnax >= 1.0), five from ``step_env``;
* an action space that disagrees with ``num_actions``;
* Python control flow on traced values (``if x > 0`` inside ``step_env``);
* dtype or shape of observation or state that differ between ``reset_env`` and
  ``step_env`` (the usual cause of cryptic ``lax.select`` errors in auto-reset);
* reward not a float scalar, ``terminated``/``truncated`` not bool scalars;
* observations outside ``observation_space`` (shape, dtype or bounds), NaN;
* different results for the same key (host-side randomness or Python state);
* ``info["final_observation"]`` missing or not the pre-reset observation;
* episodes that run past ``max_steps_in_episode`` without ``truncated``;
* failures under ``jax.vmap``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import traceback
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from mnemax.envs.wrappers import flat_bounds, space_items

_TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
)
_BATCH = 2  # vmapped copies in the rollout
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")  # object addresses in printed jaxprs


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem: ``check`` names the test that found it, ``message`` says what and how to fix it.

    Checks: ``api``, ``action_space``, ``control_flow``, ``reset_step_mismatch``, ``types``,
    ``observation_space``, ``nan``, ``final_observation``, ``auto_reset``,
    ``time_limit``, ``determinism``, ``rollout``.
    """

    check: str
    message: str

    def __str__(self) -> str:
        return self.message


class EnvCheckError(ValueError):
    """Raised by :func:`check_env` with every finding, one per line."""

    def __init__(self, findings: list[Finding]):
        self.findings = findings
        lines = "\n".join(f"- {f.message}" for f in findings)
        super().__init__(f"The environment has {len(findings)} problem(s):\n{lines}")


class _Stop(Exception):
    """A finding after which later checks cannot run."""


def check_env(
    env: Any, params: Any = None, num_steps: int = 300, *, key: jax.Array | None = None, raise_on_error: bool = True
) -> list[Finding]:
    """Check ``env`` under jit, vmap, reset, ``num_steps`` random steps and auto-reset.

    Auto-reset and the time limit are checked on the episodes that end within
    ``num_steps`` (pass params with a small ``max_steps_in_episode`` to make
    sure some do). Returns the
    findings (empty for a correct env); raises :class:`EnvCheckError` holding
    all of them unless ``raise_on_error=False``.
    """
    findings: list[Finding] = []
    try:
        _run_checks(env, params, int(num_steps), jax.random.PRNGKey(0) if key is None else key, findings)
    except _Stop:
        pass
    if findings and raise_on_error:
        raise EnvCheckError(findings)
    return findings


# ---------------------------------------------------------------------------


def _run_checks(env: Any, params: Any, num_steps: int, key: jax.Array, findings: list[Finding]) -> None:
    def add(check: str, message: str, stop: bool = False) -> None:
        findings.append(Finding(check, message))
        if stop:
            raise _Stop

    missing = [name for name in ("reset", "step", "observation_space", "action_space") if not hasattr(env, name)]
    if missing:
        add("api", f"The env lacks {', '.join(missing)}; subclass gymnax.environments.environment.Environment.", stop=True)
    if params is None:
        params = getattr(env, "default_params", None)
    try:
        obs_space = env.observation_space(params)
        action_space = env.action_space(params)
    except Exception as error:  # noqa: BLE001
        add("api", f"observation_space/action_space(params) failed with {_describe(error)}; they must accept the env's params.", stop=True)
    sample_action = _action_sampler(action_space)
    _check_action_space(add, env, action_space)
    _check_spaces_under_trace(add, env, params, key)

    # 1. Tracing: return arity, control flow on tracers, reset/step agreement.
    _check_step_env_against_reset_env(env, params, key, add)
    reset_shape = _trace(add, "reset", lambda k: env.reset(k, params), key)
    if not isinstance(reset_shape, tuple) or len(reset_shape) != 2:
        count = len(reset_shape) if isinstance(reset_shape, tuple) else 1
        add("api", f"reset returned {count} values; return (obs, state) as gymnax does.", stop=True)
    obs_shape, state_shape = reset_shape
    step_shape = _trace(add, "step", lambda k, s: env.step(k, s, sample_action(k), params), key, state_shape)
    if not isinstance(step_shape, tuple) or len(step_shape) != 6:
        count = len(step_shape) if isinstance(step_shape, tuple) else 1
        hint = (
            "that is the pre-1.0 gymnax API (obs, state, reward, done, info); return "
            "(obs, state, reward, terminated, truncated, info) as gymnax>=1.0 does"
            if count == 5
            else "return (obs, state, reward, terminated, truncated, info) as gymnax>=1.0 does"
        )
        add("api", f"step returned {count} values; {hint}.", stop=True)
    next_obs, next_state, reward, terminated, truncated, info = step_shape
    _compare_structures(add, "observation", obs_shape, next_obs, "reset", "step")
    _compare_structures(add, "state", state_shape, next_state, "reset", "step")
    _check_scalar(add, "reward", reward, jnp.floating, "a float scalar, e.g. jnp.asarray(reward, jnp.float32)")
    for name, value in (("terminated", terminated), ("truncated", truncated)):
        _check_scalar(add, name, value, jnp.bool_, "a bool scalar, e.g. jnp.asarray(x > 0, bool)")
    if not isinstance(info, dict) or "final_observation" not in info:
        add(
            "final_observation",
            'info has no "final_observation"; put the observation before auto-reset there '
            "(gymnax>=1.0's Environment.step does) so truncated episodes can be bootstrapped.",
        )
        has_final = False
    else:
        has_final = True
        _compare_structures(add, "info['final_observation']", obs_shape, info["final_observation"], "reset's observation", "step's")
    _check_space_structure(add, obs_space, obs_shape)

    # 2. vmap.
    keys = jax.random.split(key, _BATCH)
    batched = _trace(add, "reset under jax.vmap", jax.vmap(lambda k: env.reset(k, params)), keys)
    _trace(
        add,
        "step under jax.vmap",
        jax.vmap(lambda k, s: env.step(k, s, sample_action(k), params)),
        keys,
        batched[1],
    )

    # 3. Rollout: bounds, NaNs, final observations, auto-reset, time limit.
    limit = None
    if dataclasses.is_dataclass(params) and any(f.name == "max_steps_in_episode" for f in dataclasses.fields(params)):
        limit = int(params.max_steps_in_episode)
    rollout = _make_rollout(env, params, obs_space, sample_action, num_steps, has_final)
    try:
        summary = jax.device_get(jax.jit(rollout)(keys))
    except Exception as error:  # noqa: BLE001 - any failure is reported as a finding
        add(
            "rollout",
            f"A jitted, vmapped {num_steps}-step rollout failed with {_describe(error)}; step the env by hand "
            "(inside jax.disable_jit()) with the same actions to locate the failing line.",
            stop=True,
        )
    _report_rollout(add, summary, obs_space, limit, num_steps, has_final)

    # 4. Determinism: a fresh trace of a copy must give the same program.
    _check_determinism(add, env, params, sample_action, key)


def _check_spaces_under_trace(add: Callable, env: Any, params: Any, key: jax.Array) -> None:
    """The spaces must also be built inside jitted code, where gymnax-style agents sample from them.

    A space whose size comes from a JAX computation (``int(jnp_array)``) builds
    fine outside jit and fails with a ConcretizationTypeError inside it.
    """

    def build_and_sample(k):
        env.observation_space(params)
        return env.action_space(params).sample(k)

    try:
        jax.eval_shape(build_and_sample, key)
    except Exception as error:  # noqa: BLE001 - any failure is reported as a finding
        add(
            "api",
            f"observation_space/action_space(params) failed inside jax.jit with {_describe(error)}; compute their "
            "sizes from Python or NumPy values (e.g. once in __init__) so agents can build them in jitted code.",
        )


def _check_action_space(add: Callable, env: Any, space: Any) -> None:
    """A ``Discrete(n)`` action space must offer the ``num_actions`` actions the env says it has.

    An agent samples from ``action_space``; with more actions than the env
    handles, the extra ones silently alias others (or index out of range,
    which JAX clamps), and with fewer the agent never tries some.
    """
    try:
        declared = env.num_actions
    except Exception:  # noqa: BLE001 - gymnax's base class raises NotImplementedError; nothing to compare
        return
    if isinstance(space, spaces.Discrete) and isinstance(declared, (int, np.integer)) and int(space.n) != int(declared):
        add(
            "action_space",
            f"action_space(params) is Discrete({space.n}) but num_actions is {declared}; an agent samples actions "
            f"0..{space.n - 1} from action_space, so make both say the number of actions step_env handles.",
        )


def _action_sampler(space: Any) -> Callable[[jax.Array], Any]:
    """``space.sample``, but with a standard normal where a Box is unbounded."""
    if isinstance(space, spaces.Box):
        low, high = flat_bounds(space)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):

            def sample(key: jax.Array) -> jax.Array:
                normal = jax.random.normal(key, space.shape)
                return jnp.clip(normal, low.reshape(space.shape), high.reshape(space.shape)).astype(space.dtype)

            return sample
    return space.sample


def _describe(error: BaseException) -> str:
    """``TypeName: first line`` plus the innermost frame outside JAX, gymnax and the checker."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    where = ""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        path = frame.filename.replace("\\", "/")
        if not any(part in path for part in ("/jax/", "/jaxlib/", "/gymnax/", "/mnemax/envs/checker", "envs/checker.py")):
            where = f" at {path.rsplit('/', 1)[-1]}:{frame.lineno} ({frame.name})"
            break
    return f"{type(error).__name__}{where}: {text[:200]}"


def _trace(add: Callable, what: str, fn: Callable, *args: Any) -> Any:
    """``jax.eval_shape(fn, *args)`` with tracing errors turned into findings (which stop the check)."""
    try:
        return jax.eval_shape(fn, *args)
    except _TRACER_ERRORS as error:
        add(
            "control_flow",
            f"{what} uses a traced value in Python control flow (if/while/and/or, bool(), int() or np.asarray) "
            f"[{_describe(error)}]; under jit values are unknown, so use jnp.where, jax.lax.select or jax.lax.cond.",
            stop=True,
        )
    except (TypeError, ValueError) as error:
        message = str(error)
        if "select" in message or "must have the same" in message or "same shape" in message:
            add(
                "reset_step_mismatch",
                f"{what} failed in gymnax's auto-reset [{_describe(error)}]: reset_env and step_env return "
                "observations or states of different dtype or shape; make them match (e.g. jnp.asarray(x, dtype)).",
                stop=True,
            )
        if "unpack" in message:
            contract = (
                "reset_env returns (obs, state) and reset passes them on"
                if what.startswith("reset")
                else "step_env returns (obs, state, reward, terminated, info) and step returns "
                "(obs, state, reward, terminated, truncated, info)"
            )
            add("api", f"{what} could not unpack a return value [{_describe(error)}]; with gymnax>=1.0 {contract}.", stop=True)
        add("api", f"{what} failed while tracing with {_describe(error)}; fix that error first.", stop=True)
    except Exception as error:  # noqa: BLE001
        add("api", f"{what} failed while tracing with {_describe(error)}; fix that error first.", stop=True)


def _check_step_env_against_reset_env(env: Any, params: Any, key: jax.Array, add: Callable) -> None:
    """Compare ``reset_env`` and ``step_env`` directly, before gymnax's select hides which leaf differs."""
    if not (hasattr(env, "reset_env") and hasattr(env, "step_env")) or hasattr(env, "_env"):
        return  # wrappers reach the inner env's hooks; their own reset/step are compared later
    try:
        obs, state = jax.eval_shape(env.reset_env, key, params)
        action = _action_sampler(env.action_space(params))
        out = jax.eval_shape(lambda k, s: env.step_env(k, s, action(k), params), key, state)
    except _TRACER_ERRORS:
        return  # reported, with the location, when reset/step are traced
    except Exception:  # noqa: BLE001 - env without these hooks implemented; reset/step are checked instead
        return
    if not isinstance(out, tuple) or len(out) != 5:
        count = len(out) if isinstance(out, tuple) else 1
        add(
            "api",
            f"step_env returned {count} values; with gymnax>=1.0 it returns (obs, state, reward, terminated, info) "
            "and Environment.step adds truncated from is_truncated.",
            stop=True,
        )
    _compare_structures(add, "observation", obs, out[0], "reset_env", "step_env", stop=True)
    _compare_structures(add, "state", state, out[1], "reset_env", "step_env", stop=True)


def _leaf_description(leaf: Any) -> str:
    return f"{jnp.dtype(leaf.dtype).name}{list(leaf.shape)}"


def _compare_structures(
    add: Callable, what: str, first: Any, second: Any, first_name: str, second_name: str, stop: bool = False
) -> None:
    """One finding if two pytrees of ShapeDtypeStructs differ in structure, dtype or shape."""
    first_leaves, first_tree = jax.tree_util.tree_flatten_with_path(first)
    second_leaves, second_tree = jax.tree_util.tree_flatten_with_path(second)
    if first_tree != second_tree:
        add(
            "reset_step_mismatch",
            f"The {what} from {first_name} and from {second_name} have different structures ({first_tree} vs "
            f"{second_tree}); return the same pytree from both, or auto-reset cannot select between them.",
            stop=stop,
        )
        return
    differences = [
        f"{jax.tree_util.keystr(path) or 'the value'}: {_leaf_description(a)} vs {_leaf_description(b)}"
        for (path, a), (_, b) in zip(first_leaves, second_leaves)
        if a.shape != b.shape or a.dtype != b.dtype
    ]
    if differences:
        add(
            "reset_step_mismatch",
            f"The {what} from {first_name} and from {second_name} differ in dtype or shape ({'; '.join(differences)}), "
            "which breaks the lax.select of auto-reset; cast both to the same dtype and shape.",
            stop=stop,
        )


def _check_scalar(add: Callable, name: str, value: Any, kind: Any, fix: str) -> None:
    if not hasattr(value, "shape"):
        add("types", f"step's {name} is {type(value).__name__}, not an array; return {fix}.")
        return
    problems = []
    if value.shape != ():
        problems.append(f"has shape {value.shape}")
    if not jnp.issubdtype(value.dtype, kind):
        problems.append(f"has dtype {jnp.dtype(value.dtype).name}")
    if problems:
        add("types", f"step's {name} {' and '.join(problems)}; return {fix}.")


def _check_space_structure(add: Callable, space: Any, obs: Any, label: str = "") -> None:
    """Findings where ``obs`` (ShapeDtypeStructs) does not have the structure, shapes and dtypes ``space`` declares.

    Dict and Tuple spaces are checked part by part; ``label`` names the part (``['vision']``).
    """
    what = f"Observations{label}"
    if isinstance(space, spaces.Box):
        shape = tuple(np.shape(np.zeros(space.shape)))
        if not hasattr(obs, "shape"):
            add("observation_space", f"observation_space{label} is a Box but {what} are {type(obs).__name__}; return an array.")
            return
        if tuple(obs.shape) != shape:
            add(
                "observation_space",
                f"{what} have shape {tuple(obs.shape)} but observation_space{label} says {shape}; "
                "make observation_space's shape match what reset/step return.",
            )
        if jnp.dtype(obs.dtype) != jnp.dtype(space.dtype):
            add(
                "observation_space",
                f"{what} have dtype {jnp.dtype(obs.dtype).name} but observation_space{label} says "
                f"{jnp.dtype(space.dtype).name}; cast the observation or fix the space's dtype.",
            )
    elif isinstance(space, spaces.Discrete) and hasattr(obs, "shape") and obs.shape != ():
        add("observation_space", f"observation_space{label} is Discrete but {what} have shape {tuple(obs.shape)}; use a Box.")
    elif isinstance(space, spaces.Dict):
        keys = set(obs) if isinstance(obs, dict) else {k for k in space.spaces if hasattr(obs, k)}
        missing = [k for k in space.spaces if k not in keys]
        if missing:
            add(
                "observation_space",
                f"observation_space{label} is a Dict with keys {', '.join(map(repr, missing))} that {what} lack; "
                "return a dict with every key of the space.",
            )
            return
        for part, subspace, value in space_items(space, obs):
            _check_space_structure(add, subspace, value, label + part)
    elif isinstance(space, spaces.Tuple):
        if not isinstance(obs, (tuple, list)) or len(obs) != len(space.spaces):
            add("observation_space", f"observation_space{label} is a Tuple of {len(space.spaces)} spaces but {what} are not a tuple of that length.")
            return
        for part, subspace, value in space_items(space, obs):
            _check_space_structure(add, subspace, value, label + part)


def _in_space(space: Any, obs: Any, label: str = "") -> dict[str, jax.Array]:
    """``{label: [D] flags}``: is each component of each part of the observation inside the space?

    A Box part gives one flag per component, any other space one flag; the
    parts of Dict and Tuple spaces are labelled as they are indexed (``['vision']``).
    """
    if isinstance(space, spaces.Box):
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), jnp.shape(obs))
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), jnp.shape(obs))
        value = jnp.asarray(obs, jnp.float32)
        return {label: jnp.reshape((value >= low) & (value <= high), (-1,))}
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return {key: flags for part, subspace, value in space_items(space, obs) for key, flags in _in_space(subspace, value, label + part).items()}
    return {label: jnp.reshape(jnp.asarray(space.contains(obs), bool), (1,))}


def _make_rollout(env: Any, params: Any, obs_space: Any, sample_action: Callable, num_steps: int, has_final: bool) -> Callable:
    """``keys [B] -> summary``: a vmapped random rollout reduced to what the report needs."""

    def one_copy(key: jax.Array) -> dict[str, jax.Array]:
        reset_key, scan_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)
        first = {
            "inside": _in_space(obs_space, obs),
            "nan": _has_nan(obs),
        }

        def body(carry, step_key):
            state, length = carry
            action_key, step_key = jax.random.split(step_key)
            obs, state, reward, terminated, truncated, info = env.step(step_key, state, sample_action(action_key), params)
            done = jnp.logical_or(jnp.any(terminated), jnp.any(truncated))
            length = length + 1
            record = {
                "inside": _in_space(obs_space, obs),
                "nan": _has_nan(obs),
                "reward_nan": _has_nan(reward),
                "done": done,
                "truncated": jnp.any(truncated),
                "length": length,
                "time_after": _episode_time(state),
            }
            if has_final:
                final = info["final_observation"]
                same = jax.tree.map(lambda a, b: jnp.all((a == b) | (jnp.isnan(a) & jnp.isnan(b))) if jnp.issubdtype(a.dtype, jnp.inexact) else jnp.all(a == b), final, obs)
                record["final_equals_obs"] = jnp.all(jnp.stack(jax.tree.leaves(same)))
                record["final_inside"] = jnp.concatenate(list(_in_space(obs_space, final).values()))
            return (state, jnp.where(done, 0, length)), record

        _, records = jax.lax.scan(body, (state, jnp.zeros((), jnp.int32)), jax.random.split(scan_key, num_steps))
        return {"first_inside": first["inside"], "first_nan": first["nan"], **records}

    return jax.vmap(one_copy)


def _episode_time(state: Any) -> jax.Array:
    """The first integer scalar named ``time`` in the state (gymnax's step counter), or -1 if none."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = getattr(path[-1], "name", getattr(path[-1], "key", None)) if path else None
        if name == "time" and jnp.shape(leaf) == () and jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.integer):
            return jnp.asarray(leaf, jnp.int32)
    return jnp.asarray(-1, jnp.int32)


def _has_nan(tree: Any) -> jax.Array:
    leaves = [jnp.any(jnp.isnan(leaf)) for leaf in jax.tree.leaves(tree) if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact)]
    return jnp.any(jnp.stack(leaves)) if leaves else jnp.zeros((), bool)


def _report_rollout(add: Callable, summary: dict, obs_space: Any, limit: int | None, num_steps: int, has_final: bool) -> None:
    if summary["first_nan"].any() or summary["nan"].any():
        add("nan", "Observations contain NaN; guard divisions, square roots and logs in reset_env/step_env.")
    if summary["reward_nan"].any():
        add("nan", "Rewards contain NaN; guard divisions, square roots and logs in step_env.")
    outside = {  # label -> [B, 1+T, D]
        label: ~np.concatenate([summary["first_inside"][label][:, None, :], summary["inside"][label]], axis=1)
        for label in summary["first_inside"]
    }
    outside_any = np.any([flags.any(axis=-1) for flags in outside.values()], axis=0)  # [B, 1+T]
    if outside_any.any():
        places = []
        for label, flags in outside.items():
            components = np.flatnonzero(flags.any(axis=(0, 1)))
            if not components.size:
                continue
            if not label:
                places.append(
                    f"components {components[:8].tolist()} (of the flattened observation)" if isinstance(obs_space, spaces.Box) else "some observations"
                )
            else:
                places.append(f"components {components[:8].tolist()} of observation{label}" if flags.shape[-1] > 1 else f"observation{label}")
        add(
            "observation_space",
            f"In {outside_any.sum()} of {outside_any.size} observations, {', '.join(places)} fell outside "
            "observation_space's bounds; widen low/high or clip the observation.",
        )
    if has_final:
        done = summary["done"]
        if (~summary["final_equals_obs"] & ~done).any():
            add(
                "final_observation",
                'info["final_observation"] differs from the observation on steps that end no episode; it must be the '
                "observation before auto-reset, which on those steps is the observation itself.",
            )
        final_outside = ~summary["final_inside"][done] if done.any() else np.zeros((0,), bool)
        if final_outside.any():
            add(
                "observation_space",
                'info["final_observation"] falls outside observation_space at episode ends; clip it as the observation is.',
            )
    done = summary["done"]
    if done.any() and (summary["time_after"][done] > 0).any():
        add(
            "auto_reset",
            "After an episode ended, the state's time counter kept counting instead of restarting at 0; step should "
            "auto-reset (call reset_env and select on done, as gymnax's Environment.step does).",
        )
    counter = np.where(summary["time_after"] >= 0, summary["time_after"], summary["length"])  # [B, T]
    if limit is not None and (counter > limit).any():
        add(
            "time_limit",
            f"Episodes ran past max_steps_in_episode={limit} without ending; report truncated when state.time reaches the limit "
            "(gymnax's Environment.is_truncated does this if step_env increments state.time).",
        )


def _check_determinism(add: Callable, env: Any, params: Any, sample_action: Callable, key: jax.Array) -> None:
    """Trace reset plus two steps for ``env`` and for a deep copy of it; the two programs must agree.

    A traced program is deterministic given its key, so the only way the same
    key can give different results is a program that differs from trace to
    trace: host-side randomness (numpy, ``random``, time) or mutable Python
    state read while tracing, which under jit is also frozen into the program
    as the same "random" number every step. jit caches traces per env object,
    so the copy forces a fresh trace; comparing the two jaxprs (text and
    constants) finds such an env without compiling anything.
    """

    def program(env: Any) -> tuple[str, list]:
        def run(key: jax.Array) -> list:
            reset_key, *step_keys = jax.random.split(key, 3)
            obs, state = env.reset(reset_key, params)
            outputs = [obs]
            for step_key in step_keys:
                action_key, step_key = jax.random.split(step_key)
                obs, state, reward, terminated, truncated, _ = env.step(step_key, state, sample_action(action_key), params)
                outputs += [obs, reward, terminated, truncated]
            return jax.tree.leaves((outputs, state))

        closed = jax.make_jaxpr(run)(key)
        return _ADDRESS.sub("0x", str(closed.jaxpr)), [np.asarray(c) for c in closed.consts if hasattr(c, "shape")]

    try:
        first = program(env)
        second = program(copy.deepcopy(env))
    except Exception:  # noqa: BLE001 - an env that cannot be copied is not checked for this
        return
    same = first[0] == second[0] and len(first[1]) == len(second[1])
    same = same and all(a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc") for a, b in zip(*(first[1], second[1])))
    if not same:
        add(
            "determinism",
            "Two traces of reset and step with the same key differ, so results depend on more than the key; draw all "
            "randomness from the key argument with jax.random (not numpy, random or time) and keep no mutable Python "
            "state on the env.",
        )

"""The checks a user's env passes before an agent is compiled for it, and the diagnosis of a diverged run.

A user env (registered with :func:`mnemax.envs.register` or named
``package.module:Class``) gets the cheap part of :func:`mnemax.envs.checker.check_env`:
one reset, a few jitted, vmapped random steps and the tracing checks, well under
a second once compiled. What it finds stops the run before compiling, in the
env's own terms, instead of a JAX traceback from deep inside the agent, or, for
the bugs that do not crash (a float ``terminated``, observations outside
``observation_space``), instead of training silently on a broken env. mnemax's
own envs are covered by its tests and are not checked again.
"""

from __future__ import annotations

from typing import Any

PREFLIGHT_STEPS = 16
"""Random steps per vmapped copy in the pre-flight rollout."""


def env_findings(env_spec: Any) -> list[Any]:
    """The checker's findings (``Finding`` objects) for the env ``env_spec`` names, built as the registry builds it."""
    from mnemax.envs import make
    from mnemax.envs.checker import check_env

    env, params = make(env_spec.name, **dict(env_spec.kwargs))
    return check_env(env, params, num_steps=PREFLIGHT_STEPS, raise_on_error=False)


def preflight_message(env_spec: Any) -> str | None:
    """``None`` for a user env that passes (or one of mnemax's own); else the findings as one message."""
    from mnemax.envs.registry import is_user_env

    if not is_user_env(env_spec.name):
        return None
    findings = env_findings(env_spec)
    if not findings:
        return None
    lines = "\n".join(f"- {finding.message}" for finding in findings)
    return (
        f"The env {env_spec.name!r} has {len(findings)} problem(s) that training would hit, so nothing was compiled:\n"
        f"{lines}\nFix them, or skip this check with --skip-env-check (run(config, check_env=False))."
    )


def nan_source(env_spec: Any) -> str | None:
    """What, if anything, a random rollout of the env finds non-finite: ``"reward"``, ``"observation"`` or ``None``.

    Run after a divergence, to say whether the env, rather than the learning, produced the NaN.
    """
    try:
        findings = env_findings(env_spec)
    except Exception:  # noqa: BLE001 - a diagnosis must never hide the divergence it explains
        return None
    messages = [f.message for f in findings if f.check == "nan"]
    if any(m.startswith("Rewards") for m in messages):
        return "reward"
    if messages:
        return "observation"
    return None

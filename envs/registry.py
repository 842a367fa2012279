"""Environments by name: ``make(name, **kwargs) -> (env, params)``.

Seven kinds of names resolve:

* every gymnax id (``gymnax.registered_envs``): ``"CartPole-v1"``, ``"Breakout-MinAtar"``, ...;
* ``"popgym/<Name>"`` for mnemax's POPGym ports (``mnemax.envs.popgym.POPGYM_ENVS``);
* ``"memory/<Name>"`` for the S4WM memory-task suite (``mnemax.envs.memory.MEMORY_ENVS``);
* ``"grounded/<Name>"`` for the grounded-language tasks (``mnemax.envs.grounded.GROUNDED_ENVS``);
* ``"brax/<name>"`` for Brax's locomotion and control tasks, through :class:`~mnemax.envs.brax_adapter.BraxEnv`;
* ``"craftax/<id>"``, ``"navix/<id>"``, ``"xminigrid/<id>"``, ``"popgym_arcade/<id>"`` for the JAX
  suites of :data:`SUITES`, each an optional extra (``pip install "mnemax[craftax]"``);
* ``"package.module:Attribute"`` for a user's env class or factory, imported on demand,
  and any name added with :func:`register`.

Keyword arguments that are fields of the env's params override those params
(``make("CartPole-v1", max_steps_in_episode=100)``); the others go to the
constructor or factory. An unknown keyword is reported with the valid ones.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from typing import Any, Callable

import gymnax

from mnemax.configs.choices import unknown_name_message
from mnemax.envs.brax_adapter import BRAX_ENV_NAMES, BraxEnv
from mnemax.envs.craftax_adapter import CRAFTAX_ENV_IDS, CraftaxEnv
from mnemax.envs.navix_adapter import NAVIX_ENV_IDS, NavixEnv
from mnemax.envs.popgym_arcade_adapter import POPGYM_ARCADE_ENV_IDS, POPGYM_ARCADE_INSTALL, PopGymArcadeEnv
from mnemax.envs.suite_adapter import require_suite, suite_installed
from mnemax.envs.xminigrid_adapter import XMINIGRID_ENV_IDS, XMiniGridEnv

Factory = Callable[..., Any]
"""``factory(**kwargs)`` returns an environment or an ``(env, params)`` pair."""

POPGYM_PREFIX = "popgym/"
MEMORY_PREFIX = "memory/"
GROUNDED_PREFIX = "grounded/"
BRAX_PREFIX = "brax/"

_USER_ENVS: dict[str, Factory] = {}


@dataclasses.dataclass(frozen=True)
class Suite:
    """A JAX environment suite mnemax adapts: ``make(prefix + id)`` builds ``env_class(id, **kwargs)``.

    ``ids`` are the suite's ids; ``extra`` is the pyproject extra that installs
    it, ``install`` the command when that extra alone is not enough.
    """

    prefix: str
    package: str
    title: str
    extra: str
    env_class: Factory
    ids: tuple[str, ...]
    install: str | None = None

    def env_ids(self) -> tuple[str, ...]:
        """The ids when ``package`` is importable (checked without importing it), else none."""
        return self.ids if suite_installed(self.package) else ()


SUITES = (
    Suite("craftax/", "craftax", "Craftax", "craftax", CraftaxEnv, CRAFTAX_ENV_IDS),
    Suite("navix/", "navix", "Navix", "navix", NavixEnv, NAVIX_ENV_IDS),
    Suite("xminigrid/", "xminigrid", "XLand-MiniGrid", "xminigrid", XMiniGridEnv, XMINIGRID_ENV_IDS),
    Suite(
        "popgym_arcade/", "popgym_arcade", "POPGym Arcade", "popgym_arcade", PopGymArcadeEnv, POPGYM_ARCADE_ENV_IDS, POPGYM_ARCADE_INSTALL
    ),
)


def _suite_factory(name: str) -> Factory | None:
    """The factory of a suite id, None for names outside every suite; an uninstalled suite raises."""
    for suite in SUITES:
        if name.startswith(suite.prefix):
            require_suite(suite.package, suite.title, suite.extra, suite.install)
            env_id = name[len(suite.prefix) :]
            if env_id in suite.ids:
                return functools.partial(suite.env_class, env_id)
    return None


def _popgym_table() -> dict[str, Factory]:
    """The POPGym ports' table, imported when first needed (its modules are many)."""
    from mnemax.envs.popgym import POPGYM_ENVS

    return POPGYM_ENVS


def _memory_table() -> dict[str, Factory]:
    """The memory suite's table, imported when first needed."""
    from mnemax.envs.memory import MEMORY_ENVS

    return MEMORY_ENVS


def _grounded_table() -> dict[str, Factory]:
    """The grounded-language tasks' table, imported when first needed."""
    from mnemax.envs.grounded import GROUNDED_ENVS

    return GROUNDED_ENVS


_PREFIXED_TABLES: tuple[tuple[str, Callable[[], dict[str, Factory]]], ...] = (
    (POPGYM_PREFIX, _popgym_table),
    (MEMORY_PREFIX, _memory_table),
    (GROUNDED_PREFIX, _grounded_table),
)
"""mnemax's own families: ``prefix + name`` builds ``table()[name]``."""


def register(name: str, factory: Factory) -> None:
    """Make ``make(name, **kwargs)`` build ``factory(**kwargs)`` (an env or an ``(env, params)`` pair)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"An environment name must be a non-empty string, got {name!r}.")
    if not callable(factory):
        raise TypeError(f"The factory for {name!r} must be callable (a class or function), got {factory!r}.")
    if name in names():
        raise ValueError(f"An environment named {name!r} is already registered; pick another name.")
    _USER_ENVS[name] = factory


def names() -> list[str]:
    """Every name :func:`make` resolves: gymnax ids, ``popgym/*``, ``memory/*``, ``grounded/*``, ``brax/*``, the installed suites' ids, then registered ones."""
    return [
        *gymnax.registered_envs,
        *(prefix + name for prefix, table in _PREFIXED_TABLES for name in table()),
        *(BRAX_PREFIX + name for name in BRAX_ENV_NAMES),
        *(suite.prefix + env_id for suite in SUITES for env_id in suite.env_ids()),
        *_USER_ENVS,
    ]


def is_user_env(name: str) -> bool:
    """Whether ``name`` is a user's env: added with :func:`register` or imported as ``package.module:Class``."""
    return name in _USER_ENVS or (":" in name and name not in names())


def make(name: str, **kwargs: Any) -> tuple[Any, Any]:
    """Build the environment ``name`` and return ``(env, params)``; see the module docstring."""
    return build(_resolve(name), name, kwargs)


def _resolve(name: str) -> Factory:
    if name in _USER_ENVS:
        return _USER_ENVS[name]
    if name in gymnax.registered_envs:
        # The class itself (gymnax keeps no public lookup), so its signature lists the constructor options.
        return gymnax.registration._registry[name]
    for prefix, table in _PREFIXED_TABLES:
        if name.startswith(prefix) and name[len(prefix) :] in table():
            return table()[name[len(prefix) :]]
    if name.startswith(BRAX_PREFIX) and name[len(BRAX_PREFIX) :] in BRAX_ENV_NAMES:
        return functools.partial(BraxEnv, name[len(BRAX_PREFIX) :])
    suite_factory = _suite_factory(name)
    if suite_factory is not None:
        return suite_factory
    if ":" in name:
        return _import_factory(name)
    raise ValueError(unknown_name_message("env", name, names(), listed_by="mnemax.envs.names()"))


def _import_factory(path: str) -> Factory:
    """``"package.module:Attribute.sub"`` -> the attribute, with one-sentence errors."""
    module_name, _, attribute = path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"Cannot import module {module_name!r} for environment {path!r} ({error}); check the path.") from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"Module {module_name!r} has no attribute {attribute!r}; check the name after ':' in {path!r}.")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{path!r} names {type(target).__name__} object, not an environment class or factory.")
    return target


def _call_factory(factory: Factory, name: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    built = factory(**kwargs)
    env, params = built if isinstance(built, tuple) and len(built) == 2 else (built, None)
    missing = [attr for attr in ("reset", "step", "default_params") if not hasattr(env, attr)]
    if missing:
        raise TypeError(
            f"The factory for {name!r} returned {type(env).__name__}, which lacks {', '.join(missing)}; "
            "return a gymnax Environment (or an (env, params) pair)."
        )
    return env, env.default_params if params is None else params


def _explicit_keywords(factory: Factory) -> tuple[set[str], bool]:
    """Names ``factory`` accepts as keywords, and whether it also takes ``**kwargs``."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return set(), True
    accepted = {
        p.name
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    return accepted, open_ended


def build(factory: Factory, name: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """Call ``factory`` with the constructor keywords and apply the params keywords.

    A keyword the factory names explicitly goes to the factory; otherwise, if it
    is a field of the default params, it overrides that field; otherwise it goes
    to a factory that takes ``**kwargs``, or is reported as unknown.
    """
    if not kwargs:
        return _call_factory(factory, name, {})
    accepted, open_ended = _explicit_keywords(factory)
    named = {k: v for k, v in kwargs.items() if k in accepted}
    probe_env, default_params = _call_factory(factory, name, named)
    if len(named) == len(kwargs):
        return probe_env, default_params
    param_fields = {f.name for f in dataclasses.fields(default_params)} if dataclasses.is_dataclass(default_params) else set()
    constructor = {k: v for k, v in kwargs.items() if k in accepted or (open_ended and k not in param_fields)}
    overrides = {k: v for k, v in kwargs.items() if k not in constructor and k in param_fields}
    unknown = sorted(set(kwargs) - set(constructor) - set(overrides))
    if unknown:
        valid = sorted((accepted - {"self"}) | param_fields)
        raise ValueError(
            f"{name!r} takes no option(s) {', '.join(map(repr, unknown))}; valid options: {', '.join(valid) or 'none'}."
        )
    if constructor.keys() == named.keys():
        return probe_env, default_params.replace(**overrides)
    try:
        env, params = _call_factory(factory, name, constructor)
    except TypeError as error:
        if open_ended and "unexpected keyword" in str(error):
            valid = sorted(accepted | param_fields)
            raise ValueError(
                f"{name!r} rejected an option ({error}); params fields you may set: {', '.join(valid) or 'none'}."
            ) from error
        raise
    return env, params.replace(**overrides) if overrides else params

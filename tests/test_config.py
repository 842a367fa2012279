"""Config conversion: Hydra composition -> frozen dataclasses, with one-sentence errors."""

from __future__ import annotations

import dataclasses
import keyword

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from mnemax.agents.ppo import PPOConfig
from mnemax.backbones import BackboneSpec, names as backbone_names
from mnemax.envs import names as env_names
from mnemax.experiment.composition import check_overrides, configs_dir, load_run_config, yaml_options
from mnemax.experiment.config import (
    ConfigError,
    ExperimentConfig,
    build_dataclass,
    coerce,
    config_hash,
    run_config_from_dict,
    run_config_to_dict,
)


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int = 4
    pairs: tuple[tuple[str, float], ...] = ()


@dataclasses.dataclass(frozen=True)
class Outer:
    steps: int = 10
    rate: float = 0.1
    flag: bool = False
    label: str = "x"
    maybe: int | None = None
    sizes: tuple[int, ...] = (1, 2)
    inner: Inner = Inner()


def base_dict(**top):
    return {
        "name": "t",
        "seed": 0,
        "seeds": 1,
        "total_steps": 4096,
        "agent": {"name": "ppo", "num_envs": 4, "num_steps": 8, "num_minibatches": 2},
        "backbone": {"name": "gru", "features": 8, "options": {"project_inputs": True}},
        "env": {"name": "popgym/RepeatFirstEasy", "kwargs": {}},
        **top,
    }


# ------------------------------------------------------------------ generic conversion


def test_scientific_notation_becomes_int():
    assert build_dataclass(Outer, {"steps": 2e6}).steps == 2_000_000
    assert build_dataclass(Outer, {"steps": "2e6"}).steps == 2_000_000
    assert type(build_dataclass(Outer, {"steps": 2e6}).steps) is int


def test_non_whole_float_for_int_is_one_sentence():
    with pytest.raises(ConfigError, match=r"Key 'steps' expects an integer, got 2\.5, which is not a whole number\."):
        build_dataclass(Outer, {"steps": 2.5})


@pytest.mark.parametrize(
    "key, value, expected",
    [("rate", "fast", "a number"), ("flag", 1, "true or false"), ("steps", True, "an integer"), ("sizes", 3, "a list")],
)
def test_wrong_type_names_key_and_expected_type(key, value, expected):
    with pytest.raises(ConfigError) as info:
        build_dataclass(Outer, {key: value})
    message = str(info.value)
    assert message.startswith(f"Key '{key}' expects {expected}")
    assert message.count(". ") == 0 and "\n" not in message


def test_unknown_key_suggests_and_lists_valid_keys():
    with pytest.raises(ConfigError) as info:
        build_dataclass(Outer, {"rte": 1.0}, "agent")
    assert str(info.value).startswith("Unknown key 'agent.rte'; did you mean 'rate'? Valid keys: flag, inner, label")


def test_nested_dataclass_and_pairs():
    out = build_dataclass(Outer, {"inner": {"width": 8.0, "pairs": {"b": 2, "a": 1}}, "maybe": None, "sizes": [3, 4]})
    assert out.inner == Inner(width=8, pairs=(("a", 1.0), ("b", 2.0)))
    assert out.sizes == (3, 4) and out.maybe is None
    hash(out)  # frozen configs must hash to be jit-static
    with pytest.raises(ConfigError, match=r"Key 'inner\.pairs\.a' expects a number"):
        build_dataclass(Outer, {"inner": {"pairs": {"a": "x"}}})


@given(st.integers(-(10**9), 10**9))
def test_integral_floats_round_trip_to_the_same_int(n):
    assert coerce(int, float(n), "k") == n
    assert coerce(float, n, "k") == float(n)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
def test_any_unknown_key_is_reported_by_name(key):
    if key in {f.name for f in dataclasses.fields(Outer)}:
        return  # a valid key; the other tests cover those
    with pytest.raises(ConfigError) as info:
        build_dataclass(Outer, {key: 1})
    assert f"'{key}'" in str(info.value) and "Valid keys:" in str(info.value)


# ------------------------------------------------------------------ run config


def test_run_config_sets_total_steps_and_backbone_on_the_agent():
    config = run_config_from_dict(base_dict(total_steps=1e4))
    assert isinstance(config.agent, PPOConfig)
    assert config.agent.total_steps == 10_000 and config.experiment.total_steps == 10_000
    assert config.agent.backbone == BackboneSpec("gru", 8, (("project_inputs", True),))
    assert config.env.name == "popgym/RepeatFirstEasy"


def test_backbone_none_is_feed_forward():
    config = run_config_from_dict(base_dict(backbone={"name": "none"}))
    assert config.agent.backbone is None


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"agent": {"name": "ppo", "lerning_rate": 1.0}}, r"Unknown key 'agent\.lerning_rate'; did you mean 'learning_rate'\?"),
        ({"agent": {"name": "ppo", "total_steps": 5}}, r"Key 'agent\.total_steps' is set at the top level"),
        ({"agent": {"name": "ppx"}}, r"Unknown agent 'ppx'; did you mean 'ppo'\? Valid agents: (dreamer, ppo|ppo, dreamer)"),
        ({"backbone": {"name": "s6", "features": 8}}, r"Unknown backbone 's6'; did you mean 's5'\?"),
        ({"backbone": {"name": "gru", "features": 8, "options": {"layers": 2}}}, r"no option\(s\) 'layers'"),
        ({"sedes": 2}, r"Unknown key 'sedes'; did you mean 'seeds'\?"),
        ({"seeds": 0}, r"Key 'seeds' must be at least 1"),
        ({"loggers": ["tensorbord"]}, r"Unknown logger 'tensorbord' in 'loggers'; valid loggers: tensorboard, wandb"),
        ({"agent": {"name": "ppo", "num_envs": 3}}, r"num_envs=3 must be divisible by num_minibatches"),
    ],
)
def test_run_config_errors_are_one_sentence(change, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        run_config_from_dict({**base_dict(), **change})
    assert "\n" not in str(info.value)


def test_config_round_trips_through_its_dict():
    config = run_config_from_dict(base_dict(loggers=["tensorboard"], run_dir="x"))
    assert run_config_from_dict(run_config_to_dict(config)) == config


def test_config_hash_tracks_what_changes_the_numbers():
    base = run_config_from_dict(base_dict())
    assert config_hash(base) == config_hash(run_config_from_dict(base_dict()))
    watched = run_config_from_dict(base_dict(run_dir="elsewhere", progress=False, loggers=["tensorboard"], name="n"))
    assert config_hash(watched) == config_hash(base)
    for change in ({"seed": 1}, {"seeds": 2}, {"total_steps": 8192}, {"agent": {**base_dict()["agent"], "learning_rate": 1e-2}}):
        assert config_hash(run_config_from_dict(base_dict(**change))) != config_hash(base)


# ------------------------------------------------------------------ the YAML configs and Hydra composition


def test_default_config_is_ppo_s5_on_a_popgym_memory_task():
    config = load_run_config()
    assert config.agent_name == "ppo" and config.backbone.name == "s5"
    assert config.env.name.startswith("popgym/Repeat")
    assert ExperimentConfig().progress and config.experiment.run_dir is None


def test_user_command_line_composes():
    config = load_run_config(["backbone=gru", "env=popgym/RepeatFirstEasy", "seeds=4", "total_steps=2e6"])
    assert (config.backbone.name, config.env.name, config.experiment.seeds) == ("gru", "popgym/RepeatFirstEasy", 4)
    assert config.experiment.total_steps == 2_000_000 and config.agent.total_steps == 2_000_000


def test_every_registered_env_is_a_config_option():
    from hydra.core.config_store import ConfigStore

    from mnemax.experiment.composition import register_configs

    names = env_names()
    assert check_overrides([f"env={name}" for name in names])  # each passes the up-front check
    register_configs()
    store, with_yaml = ConfigStore.instance(), set(yaml_options("env"))
    for name in names:
        assert name in with_yaml or store.load(f"env/{name}.yaml").node.name == name
    # and Hydra resolves them, whatever their kind of name
    for name in ("CartPole-v1", "popgym/RepeatFirstEasy", "brax/ant"):
        assert load_run_config([f"env={name}"]).env.name == name


def test_every_backbone_has_a_yaml_that_builds():
    assert set(yaml_options("backbone")) == {"none", *backbone_names()}
    for name in backbone_names():
        config = load_run_config([f"backbone={name}"])
        assert config.backbone.name == name
        config.backbone.build()


def test_ppo_yaml_lists_exactly_the_ppo_fields():
    listed = set(OmegaConf.load(configs_dir() / "agent" / "ppo.yaml")) - {"name"}
    fields = {f.name for f in dataclasses.fields(PPOConfig)} - {"total_steps", "backbone"}
    assert listed == fields


def test_options_and_kwargs_overrides_become_add_or_set():
    ready = check_overrides(["backbone.options.num_layers=1", "env.kwargs.max_steps_in_episode=5", "seeds=2"])
    assert ready == ["++backbone.options.num_layers=1", "++env.kwargs.max_steps_in_episode=5", "seeds=2"]
    config = load_run_config(["backbone=gru", "backbone.options.project_inputs=true"])
    assert dict(config.backbone.options)["project_inputs"] is True


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("agent.lerning_rate=1e-3", r"Unknown key 'agent\.lerning_rate'; did you mean 'learning_rate'\?"),
        ("env=popgym/RepeatFrstEasy", r"Unknown env 'popgym/RepeatFrstEasy'; did you mean 'popgym/RepeatFirstEasy'\?"),
        ("backbone=gur", r"Unknown backbone 'gur'; did you mean 'gru'\?"),
        ("totl_steps=5", r"Unknown key 'totl_steps'; did you mean 'total_steps'\?"),
        ("seed.x=1", r"Key 'seed' is a single value"),
        ("agent.learning_rate=fast", r"Key 'agent\.learning_rate' expects a number, got 'fast'"),
    ],
)
def test_bad_overrides_are_one_sentence(override, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        load_run_config([override])
    assert "\n" not in str(info.value)


@settings(max_examples=8)
@given(
    st.sampled_from(["learning_rate", "gamma", "clip_eps", "ent_coef", "vf_coef"]),
    st.floats(1e-6, 1.0, allow_nan=False),
)
def test_any_valid_float_override_lands_in_the_agent_config(field, value):
    config = load_run_config([f"agent.{field}={value!r}"])
    assert getattr(config.agent, field) == pytest.approx(value)


@settings(max_examples=10)
@given(st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True))
def test_any_unknown_agent_key_is_refused_by_name(key):
    fields = {f.name for f in dataclasses.fields(PPOConfig)} | {"name"}
    if key in fields or keyword.iskeyword(key):
        return
    with pytest.raises(ConfigError, match=rf"'agent\.{key}'"):
        check_overrides([f"agent.{key}=1"])


def test_multirun_sweeps_check_every_choice():
    assert check_overrides(["backbone=gru,s5", "agent.learning_rate=1e-3,3e-4"]) == [
        "backbone=gru,s5",
        "agent.learning_rate=1e-3,3e-4",
    ]
    with pytest.raises(ConfigError, match=r"Unknown backbone 's6'; did you mean 's5'\?"):
        check_overrides(["backbone=gru,s6"])


# ------------------------------------------------------------------ values that used to fail deep inside


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("agent.learning_rate=-1e-3", r"PPOConfig\.learning_rate must be a positive number, got -0\.001"),
        ("agent.learning_rate=nan", r"PPOConfig\.learning_rate must be a positive number, got nan"),
        ("agent.clip_eps=-0.2", r"PPOConfig\.clip_eps must be a positive number"),
        ("agent.max_grad_norm=0", r"PPOConfig\.max_grad_norm must be a positive number, got 0\.0"),
        ("agent.encoder_sizes=[0]", r"PPOConfig\.encoder_sizes lists layer widths, which must be positive"),
        ("backbone.features=0", r"Key 'backbone\.features' is the backbone's output width and must be at least 1, got 0"),
        ("total_steps=1e100", r"Key 'total_steps' is 1e\+100, more than the 2147483647 env steps a run can count"),
        ("env.kwargs.max_steps_in_episode=-5", r"Key 'env\.kwargs\.max_steps_in_episode' counts steps and must be a positive integer"),
        ("world_model.hiden=8", r"Unknown key 'world_model\.hiden'; did you mean 'hidden'\?"),
        ("world_model=rsm", r"Unknown world model 'rsm'; did you mean 'rssm'\?"),
        ("world_model.backbone=gru", r"Key 'world_model\.backbone' is set at the top level"),
    ],
)
def test_bad_values_are_one_sentence_before_anything_builds(override, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        load_run_config([override])
    assert "\n" not in str(info.value)


def test_an_empty_encoder_is_a_valid_ppo():
    config = load_run_config(["agent.encoder_sizes=[]", "backbone=gru"])
    assert config.agent.encoder_sizes == ()


def test_a_user_env_is_a_group_choice_too():
    assert check_overrides(["env=mnemax.envs.popgym.count_recall:CountRecall"]) == ["env.name=mnemax.envs.popgym.count_recall:CountRecall"]
    config = load_run_config(["env=mnemax.envs.popgym.count_recall:CountRecall"])
    assert config.env.name == "mnemax.envs.popgym.count_recall:CountRecall"


def test_every_world_model_field_is_settable_from_the_command_line():
    config = load_run_config(["agent=dreamer", "world_model.cnn_depth=8", "world_model.latent_groups=4", "backbone=gru"])
    model = config.agent.world_model
    assert (model.cnn_depth, model.latent_groups, model.backbone.name) == (8, 4, "gru")
    listed = set(OmegaConf.load(configs_dir() / "worldmodel" / "rssm.yaml")) - {"name"}
    assert listed == {f.name for f in dataclasses.fields(type(model))} - {"backbone"}
    assert run_config_from_dict(run_config_to_dict(config)) == config


def test_one_did_you_mean_for_every_kind_of_name():
    from mnemax.backbones import make as make_backbone
    from mnemax.envs import make as make_env_by_name

    for build, name, pattern in (
        (lambda: make_backbone("s6", 8), "backbone", r"Unknown backbone 's6'; did you mean 's5'\? Valid backbones: "),
        (lambda: make_env_by_name("CartPole-v2"), "env", r"Unknown env 'CartPole-v2'; did you mean 'CartPole-v1'\? Valid envs: see mnemax\.envs\.names\(\)\."),
    ):
        with pytest.raises(ValueError, match=pattern):
            build()


def test_every_backbone_yaml_names_the_same_sizes_and_each_builds():
    from mnemax.experiment.composition import backbone_size

    sizes = {name: set(OmegaConf.load(configs_dir() / "backbone" / f"{name}.yaml").sizes) for name in backbone_names()}
    assert all(names == sizes["gru"] for names in sizes.values()) and "probe" in sizes["gru"]
    for name in backbone_names():
        for size in sizes[name]:
            assert backbone_size(name, size, 8).build().features == 8
    assert dict(backbone_size("s5", "probe", 64).options) == {"num_layers": 2, "state_size": 32}
    with pytest.raises(ConfigError, match=r"Unknown size 'prob'; did you mean 'probe'\? Valid sizes of backbone 's5': "):
        backbone_size("s5", "prob", 64)
    assert "sizes" not in run_config_to_dict(load_run_config(["backbone=s5"]))["backbone"]  # for scripts, not runs

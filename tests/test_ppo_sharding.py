"""PPO sharded over four CPU devices equals PPO on one device (run in a subprocess: XLA reads the device count once)."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, os
    from mnemax.experiment.runtime import configure_jax
    configure_jax()
    import gymnax, jax, numpy as np
    from jax.sharding import Mesh
    from mnemax.agents import PPOConfig, make_train
    from mnemax.backbones import BackboneSpec

    assert jax.device_count() == 4, jax.devices()
    env, params = gymnax.make("CartPole-v1")
    base = PPOConfig(total_steps=8 * 16 * 2, num_envs=8, num_steps=16, update_epochs=2, num_minibatches=2,
                     head_sizes=(16,), normalize_observations=True)
    configs = {"feed_forward": base,
               "gru": dataclasses.replace(base, backbone=BackboneSpec("gru", 8), encoder_sizes=(8,), head_sizes=(8,))}
    mesh = Mesh(np.array(jax.devices()), ("envs",))
    out = {}
    for name, config in configs.items():
        key = jax.random.key(0)
        single_state, single = jax.jit(make_train(config, env, params))(key)
        sharded_state, sharded = jax.jit(make_train(config, env, params, mesh=mesh))(key)
        spec = sharded_state.obs.sharding.spec
        out[name] = {
            "single": {k: np.asarray(v).tolist() for k, v in single.items()},
            "sharded": {k: np.asarray(v).tolist() for k, v in sharded.items()},
            "obs_devices": len(sharded_state.obs.sharding.device_set),
            "obs_spec": str(spec),
            "params_replicated": bool(jax.tree.leaves(sharded_state.params)[0].sharding.is_fully_replicated),
        }
    print("RESULT" + json.dumps(out))
    """
)


def test_sharded_training_matches_single_device():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT"))
    results = json.loads(line[len("RESULT"):])
    for name, result in results.items():
        assert result["obs_devices"] == 4, name
        assert "envs" in result["obs_spec"], name
        assert result["params_replicated"], name
        for metric, values in result["single"].items():
            np.testing.assert_allclose(
                result["sharded"][metric], values, rtol=1e-4, atol=1e-5, err_msg=f"{name}: {metric}"
            )

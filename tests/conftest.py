"""Shared test setup: persistent compilation cache and hypothesis profiles."""

import os

from hypothesis import HealthCheck, settings

from mnemax.experiment.runtime import configure_jax

configure_jax()

# Each hypothesis example may trigger an XLA compile; deadlines would be noise.
settings.register_profile(
    "mnemax",
    deadline=None,
    max_examples=int(os.environ.get("MNEMAX_HYPOTHESIS_EXAMPLES", "20")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("mnemax")

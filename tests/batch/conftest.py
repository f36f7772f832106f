"""Fixtures of the batch tests: one local Ray cluster for the whole session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray cluster with 2 CPUs for the whole session (starting one takes seconds)."""
    import ray

    from rvmkit.batch.ray_runner import init_ray

    started = init_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()

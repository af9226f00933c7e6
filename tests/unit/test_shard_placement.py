"""Shard placement options: parsed from the environment, validated, and turned into Ray options."""

from __future__ import annotations

import pytest

from cluster.pool import PoolSettings, placement_options
from engine.config.env import ConfigError
from engine.daemon.services import RuntimeSettings, parse_shard_resources


def test_shard_resources_parse_and_reach_the_actor_options() -> None:
    env = {"AI_QUANT_SHARD_RESOURCES": "aiq_shard=0.001, gpu_like=2", "AI_QUANT_SHARD_SCHEDULING": "SPREAD"}
    settings = RuntimeSettings.from_env(env)
    assert settings.shard_resources == (("aiq_shard", 0.001), ("gpu_like", 2.0))
    pool = PoolSettings(resources=settings.shard_resources, scheduling_strategy=settings.shard_scheduling)
    assert placement_options(pool) == {
        "resources": {"aiq_shard": 0.001, "gpu_like": 2.0},
        "scheduling_strategy": "SPREAD",
    }


def test_single_box_defaults_add_no_placement_options() -> None:
    settings = RuntimeSettings.from_env({})
    assert settings.shard_resources == () and settings.shard_scheduling is None
    assert placement_options(PoolSettings()) == {}


@pytest.mark.parametrize("bad", ["aiq_shard", "aiq_shard=", "=1", "aiq_shard=-1", "aiq_shard=x", "a=nan"])
def test_bad_shard_resources_are_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="AI_QUANT_SHARD_RESOURCES"):
        parse_shard_resources({"AI_QUANT_SHARD_RESOURCES": bad})


def test_pool_settings_refuse_a_non_positive_resource() -> None:
    with pytest.raises(ValueError, match="positive"):
        PoolSettings(resources=(("aiq_shard", 0.0),))

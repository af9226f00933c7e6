"""ray_cluster.yaml passes Ray's own config preparation and validation, and says what we mean.

Ray's private autoscaler API, in the order that works (reference: ray-redis-on-this-machine §7):
prepare_config -> validate_config -> _bootstrap_config(no_config_cache=True). No SSH, no
processes. The file's start commands are then checked for the deployment rules (Ray's port is
not Redis's 6379, the head gives shards no CPU, the dashboard stays on loopback, one venv path,
one auth mode everywhere).
"""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.integration.cluster_scripts.common import PROJECT_ROOT, remove_tmpdir, short_tmpdir
from tests.integration.cluster_scripts.localhost_yaml import localhost_variant

CLUSTER_YAML = PROJECT_ROOT / "ray_cluster.yaml"
VENV = "/opt/ai-quant/.venv"


@pytest.fixture
def ray_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The local provider keeps cluster state under RAY_TMPDIR: keep ours private."""
    path = short_tmpdir()
    monkeypatch.setenv("RAY_TMPDIR", path)
    yield path
    remove_tmpdir(path)


def ray_validated(raw: dict[str, Any]) -> dict[str, Any]:
    from ray.autoscaler._private.commands import _bootstrap_config
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(raw))
    validate_config(prepared)
    return _bootstrap_config(prepared, no_config_cache=True)


def start_args(command: str) -> list[str]:
    """The argv of the `ray start` part of a start command."""
    part = next(p for p in command.split(";") if " start " in p)
    return shlex.split(part)


def load() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


@pytest.mark.usefixtures("ray_tmpdir")
def test_cluster_yaml_passes_ray_prepare_validate_and_bootstrap() -> None:
    cfg = ray_validated(load())
    assert cfg["provider"]["type"] == "local"
    node_type = cfg["available_node_types"][cfg["head_node_type"]]
    workers = cfg["provider"]["worker_ips"]
    assert len(workers) == 2 and cfg["provider"]["head_ip"] not in workers
    assert node_type["min_workers"] == node_type["max_workers"] == len(workers)


@pytest.mark.usefixtures("ray_tmpdir")
def test_cluster_yaml_start_commands_follow_the_deployment_rules() -> None:
    cfg = ray_validated(load())
    head = start_args(cfg["head_start_ray_commands"][-1])
    worker = start_args(cfg["worker_start_ray_commands"][-1])
    assert head[:3] == [f"{VENV}/bin/ray", "start", "--head"]
    port = next(a for a in head if a.startswith("--port=")).split("=")[1]
    assert port != "6379"  # Redis's port
    assert f"--address=$RAY_HEAD_IP:{port}" in worker
    assert "--num-cpus=0" in head  # the head keeps its CPU for the driver, sidecar and Redis
    assert "--dashboard-host=127.0.0.1" in head
    resources = next(a for a in worker if a.startswith("--resources="))
    assert '"aiq_shard"' in resources
    for command in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]:
        assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0" not in command  # would refuse worker joins
        assert "RAY_AUTH_MODE=disabled" not in command
    for command in (cfg["head_start_ray_commands"][-1], cfg["worker_start_ray_commands"][-1]):
        assert "RAY_AUTH_MODE=token" in command  # one auth mode on every node
    assert "RAY_scheduler_spread_threshold=0.0" in cfg["head_start_ray_commands"][-1]
    # One venv path on every node: every executable the commands name lives in it.
    commands = cfg["setup_commands"] + cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]
    for path in re.findall(r"(/\S+/bin/(?:ray|python|pip))\b", " ".join(commands)):
        assert path.startswith(f"{VENV}/bin/"), path
    assert cfg["file_mounts"]["/opt/ai-quant"] == "."
    assert {".venv", ".git", "state"} <= set(cfg["rsync_exclude"])


def _schema_error() -> type[Exception]:
    import jsonschema

    return jsonschema.ValidationError


def _abort() -> type[Exception]:
    import click

    return click.ClickException


@pytest.mark.usefixtures("ray_tmpdir")
@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (lambda c: c.update(head_num_cpus=0), _schema_error, "head_num_cpus"),
        (lambda c: c["auth"].update(ssh_port=2222), _schema_error, "ssh_port"),
        (lambda c: c["provider"].pop("head_ip"), _abort, "head_ip"),
        (lambda c: c.update(available_node_types={"w": {"node_config": {}, "resources": {}}}), _abort,
         "available_node_types"),
    ],
    ids=["unknown_top_level_key", "unknown_auth_key", "no_head_ip", "node_types_on_prem"],
)
def test_cluster_yaml_edits_ray_rejects_are_rejected(edit: Any, error: Any, match: str) -> None:
    """Proves the validation has teeth: the same calls refuse what Ray cannot run."""
    raw = load()
    edit(raw)
    with pytest.raises(error(), match=match):
        ray_validated(raw)


def test_localhost_variant_validates_and_only_changes_what_a_test_box_needs(ray_tmpdir: str) -> None:
    ports = {"gcs": 50001, "dashboard": 50002, "client": 50003, "agent": 50004, "metrics": 50005}
    raw = load()
    variant = localhost_variant(raw, project_root="/opt/x", ssh_user="me", ssh_key="/k/id",
                                ports=ports, env={"RAY_TMPDIR": ray_tmpdir}, venv_dir="/opt/x/.venv")
    cfg = ray_validated(variant)
    assert cfg["provider"]["head_ip"] == "127.0.0.1" and cfg["provider"]["worker_ips"] == []
    head = start_args(cfg["head_start_ray_commands"][-1])
    assert head[0] == "/opt/x/.venv/bin/ray"
    assert "--port=50001" in head and "--dashboard-port=50002" in head
    assert "--num-cpus=0" in head and "--dashboard-host=127.0.0.1" in head
    assert "RAY_AUTH_MODE=disabled" in cfg["head_start_ray_commands"][-1]
    assert cfg["cluster_name"] == raw["cluster_name"]
    # If the real file stops saying what the variant replaces, the variant refuses to guess.
    broken = load()
    broken["head_start_ray_commands"][-1] = broken["head_start_ray_commands"][-1].replace("--port=6380", "")
    with pytest.raises(ValueError, match="--port=6380"):
        localhost_variant(broken, project_root="/opt/x", ssh_user="me", ssh_key="/k/id", ports=ports, env={})


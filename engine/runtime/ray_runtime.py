"""Connect the driver to Ray: attach to a running cluster, or start an embedded one on loopback.

Policy (DESIGN §6): `RAY_ADDRESS` set → attach to it; else a cluster started on this box with
`ray start --head` (its bootstrap address file exists and its GCS port answers) → attach; else
start an embedded Ray bound to loopback. Ray 2.60 facts that shape this module: every process
must export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before importing ray or listeners bind to the
machine's public address, and token auth must be set consistently (we default to disabled for
embedded runs and leave the operator's choice alone otherwise).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

log = logging.getLogger(__name__)

RAY_NAMESPACE_DEFAULT = "aiq"


class RayAttachment(StrEnum):
    ATTACHED = "attached"
    EMBEDDED = "embedded"


@dataclass(frozen=True, slots=True)
class RayInfo:
    attachment: RayAttachment
    address: str
    namespace: str
    dashboard_url: str | None


def prepare_ray_environment() -> None:
    """Set the loopback/auth variables Ray reads at import time (no-op when already set)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def dashboard_http_url(address: str | None) -> str | None:
    """Ray's `host:port` dashboard address as an http URL (None when Ray serves no dashboard)."""
    if not address:
        return None
    return address if "://" in address else f"http://{address}"


def _port_answers(address: str, timeout_secs: float = 1.0) -> bool:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_secs):
            return True
    except OSError:
        return False


def local_cluster_address(temp_dir: str | None = None) -> str | None:
    """Return the address of a `ray start` cluster on this box if its GCS answers, else None."""
    path = Path(temp_dir or "/tmp/ray") / "ray_current_cluster"
    try:
        address = path.read_text().strip()
    except OSError:
        return None
    return address if address and _port_answers(address) else None


def connect_ray(
    *,
    namespace: str = RAY_NAMESPACE_DEFAULT,
    num_cpus: int | None = None,
    include_dashboard: bool | None = False,
) -> RayInfo:
    """Attach to or start Ray according to the module policy; return what was done.

    Only an embedded start uses `include_dashboard`: False starts Ray's minimal dashboard process
    (no page, no state API), None Ray's default (the full dashboard when its dependencies are
    installed; a failure to start it is logged, not fatal)."""
    prepare_ray_environment()
    import ray

    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        return RayInfo(RayAttachment.ATTACHED, ctx.gcs_address, ctx.namespace, None)
    address = os.environ.get("RAY_ADDRESS", "").strip() or local_cluster_address()
    if address:
        ctx = ray.init(address=address, namespace=namespace, log_to_driver=False,
                       configure_logging=False)
        log.info("attached to Ray cluster at %s (namespace %s)", address, namespace)
        return RayInfo(RayAttachment.ATTACHED, address, namespace, dashboard_http_url(ctx.dashboard_url))
    ctx = ray.init(
        num_cpus=num_cpus,
        namespace=namespace,
        include_dashboard=include_dashboard,
        dashboard_host="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    gcs = ray.get_runtime_context().gcs_address
    # Ray's agent processes outlive a kill -9 of this driver; the reaper stops them (and any
    # other descendant of ours) once we are gone.
    from engine.runtime.reaper import start_reaper

    reaper = start_reaper()
    log.info("started embedded Ray (gcs %s, namespace %s); orphan reaper pid=%s", gcs, namespace, reaper.pid)
    return RayInfo(RayAttachment.EMBEDDED, gcs, namespace, dashboard_http_url(ctx.dashboard_url))


def shutdown_ray() -> None:
    """Disconnect (attached) or stop (embedded) Ray; safe to call twice."""
    import ray

    if ray.is_initialized():
        ray.shutdown()

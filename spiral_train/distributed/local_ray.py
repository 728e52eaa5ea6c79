"""Starting a local Ray cluster that reaches nothing beyond the machine.

`ray.init(include_dashboard=False)` alone is not enough in Ray 2.60: the driver still starts the API-server process
(`dashboard/dashboard.py --modules-to-load=UsageStatsHead`), whose module asks the cloud metadata services on every
start (`usage_lib.get_cloud_from_metadata_requests`: HTTP to 169.254.169.254 and a DNS lookup of
metadata.google.internal), whether usage stats are on or off; usage stats are on unless `RAY_USAGE_STATS_ENABLED=0`;
and on Linux a node refuses 127.0.0.1 as its address (`resolve_ip_for_localhost`) and takes that of the default
route instead (found with a UDP connect to 8.8.8.8), where its processes then talk to each other. `init_local_ray`
starts the cluster with usage stats off, on 127.0.0.1 (the one-node mode Ray uses on macOS and Windows,
`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`), and without the API-server process (which a local run does not use: it
serves the dashboard, the job and state APIs). The dashboard agent and the runtime-env agent, which the raylet
always starts, stay; they reach only the node's own address. `tests/train/distributed/test_no_network.py` checks it.

A cluster started elsewhere (`ray_address`) is not started here; docs/scaling.md says what to set on it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

LOOPBACK = "127.0.0.1"

OFFLINE_ENV: Mapping[str, str] = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Environment the local cluster's processes start with (they inherit the driver's at `ray.init`)."""


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """`values` set in `os.environ` inside the block, the old values (or their absence) restored after."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _replaced(owner: Any, name: str, value: Any) -> Iterator[None]:
    """`owner.name` is `value` inside the block, its old value again after."""
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


@contextlib.contextmanager
def no_api_server() -> Iterator[None]:
    """Inside the block, a Ray node started in this process starts no API-server (dashboard) process: Ray's
    `services.start_api_server` answers as for a dashboard that failed to start, (no URL, no process), which
    Ray treats as a node without a dashboard."""
    from ray._private import services

    def skipped(*args: Any, **kwargs: Any) -> tuple[None, None]:
        return None, None

    with _replaced(services, "start_api_server", skipped):
        yield


@contextlib.contextmanager
def loopback_node() -> Iterator[None]:
    """Inside the block, this process takes 127.0.0.1 as its node's address, as Ray does on macOS and Windows
    (`ray_constants.ENABLE_RAY_CLUSTER`, read from the environment when Ray is imported, so set here too)."""
    from ray._private import ray_constants

    with _replaced(ray_constants, "ENABLE_RAY_CLUSTER", False):
        yield


@contextlib.contextmanager
def offline_ray_start() -> Iterator[None]:
    """Inside the block, a Ray node started by this process (`ray.init` without an address, or
    `ray.cluster_utils.Cluster`'s nodes) starts with usage stats off, on 127.0.0.1, and with no API-server
    process; its processes keep that environment. A driver connecting to such a node by address must connect
    inside the block too: outside it, Ray turns the address 127.0.0.1 into the default route's, where the node
    does not listen."""
    with _environment(OFFLINE_ENV), no_api_server(), loopback_node():
        yield


def init_local_ray(num_cpus: int, log_to_driver: bool = False, **kwargs: Any) -> Any:
    """`ray.init` of a new local cluster with `num_cpus` logical CPUs, that reaches nothing beyond the machine
    (see the module's docstring); returns what `ray.init` returns. `kwargs` go to `ray.init` as well."""
    import ray

    with offline_ray_start():
        return ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=log_to_driver,
            _node_ip_address=LOOPBACK,
            **kwargs,
        )

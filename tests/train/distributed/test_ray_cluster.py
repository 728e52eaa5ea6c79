"""The Ray run on a two-node cluster equals the one-node run.

`ray.cluster_utils.Cluster` starts a head node and a second node (its own raylet and object store) on this
machine; `ray_worker_resources` asks for a resource only the second node has, so every rollout worker runs
there while the driver and the learner stay on the head. Same seeds, same chunks: the metrics must equal
the one-node run's step by step, so nothing in the loop assumes that actors share the driver's node.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("torch")

from helpers import small_config  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from spiral_train.distributed.local_ray import init_local_ray, offline_ray_start  # noqa: E402
from spiral_train.metrics import read_metrics  # noqa: E402
from spiral_train.trainer import Trainer  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.learning]

STEPS = 3
COMPARED = ("train/reward_mean", "loss", "grad_norm", "train/response_len", "train/invalid_rate", "entropy")


def run(model: Path, run_dir: Path, **extra) -> tuple[list[dict], list[str]]:
    """A 2-worker sync run; its metrics, and the node each rollout worker ran on."""
    config = small_config(model, STEPS, games_per_step=8, num_envs=4, ray_workers=2, **extra)
    trainer = Trainer(config, run_dir)

    def worker_node(worker) -> str:  # runs inside the worker (nested, so Ray ships it by value)
        return ray.get_runtime_context().get_node_id()

    nodes = ray.get([w.__ray_call__.remote(worker_node) for w in trainer.rollouts.workers.workers])
    trainer.run()
    return read_metrics(run_dir), nodes


def test_rollout_workers_on_a_second_node_give_the_one_node_run(quick_model, tmp_path):
    init_local_ray(num_cpus=4)
    try:
        one_node, _ = run(quick_model, tmp_path / "one")
    finally:
        ray.shutdown()

    # both nodes on 127.0.0.1 (where the driver must connect to them too), usage stats off, no dashboard process
    with offline_ray_start():
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        with offline_ray_start():
            second = cluster.add_node(num_cpus=2, resources={"rollout_node": 2})
            ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        two_nodes, nodes = run(quick_model, tmp_path / "two", ray_worker_resources={"rollout_node": 1})
        head = ray.get_runtime_context().get_node_id()
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert nodes == [second.node_id] * 2 and head != second.node_id, (nodes, head)
    assert [r["step"] for r in two_nodes] == list(range(STEPS + 1))
    for got, expected in zip(two_nodes[1:], one_node[1:]):
        assert got["ray/worker_failures"] == 0 and got["train/staleness_max"] == 0
        for key in COMPARED:
            assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (got["step"], key)

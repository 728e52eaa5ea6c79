"""Ray runs on GPUs placed right, and faults survived or ended cleanly.

The GPU rules are pure functions of the config, a "uses CUDA" flag and the cluster's resources, so they are
checked here without a GPU. The rest runs real actors on a local CPU cluster (the module's `cluster`, 4
logical CPUs) with the tiny quick model: the learner ranks' placement group and their collective timeout, a
chunk that fails every time, and a learner rank killed mid-run. A worker whose call raises (a task error) is
tested in tests/train/distributed/test_ray.py, against that module's reference run.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from helpers import small_config  # noqa: E402

from spiral_train.checkpoint import latest_checkpoint  # noqa: E402
from spiral_train.config import ConfigError, make_config  # noqa: E402
from spiral_train.config.views import LearnerRankSettings, ModelSource, RaySettings, WorkerSettings  # noqa: E402
from spiral_train.distributed.driver import check_resources, run_uses_cuda  # noqa: E402
from spiral_train.distributed.learner_group import LearnerGroup, LearnerRankError, play_weights  # noqa: E402
from spiral_train.distributed.rollouts import CHUNK_ATTEMPTS, ChunkFailedError, RolloutPool  # noqa: E402
from spiral_train.metrics import read_metrics  # noqa: E402
from spiral_train.models.loading import load_model  # noqa: E402
from spiral_train.rollout.records import LEARNER, Match  # noqa: E402
from spiral_train.trainer import Trainer  # noqa: E402

NODE_8_GPUS = {"CPU": 64.0, "GPU": 8.0}


def ray_options(**extra):
    return make_config("tiny-cpu", {"ray_workers": 2, **extra})


# -- GPU requests (pure: no cluster) ----------------------------------------------------------------------


def test_the_run_uses_cuda_where_the_device_says_so_or_auto_finds_a_gpu():
    assert run_uses_cuda("cuda", driver_has_gpu=False, cluster_gpus=0)
    assert run_uses_cuda("auto", driver_has_gpu=True, cluster_gpus=0)
    assert run_uses_cuda("auto", driver_has_gpu=False, cluster_gpus=8)
    assert not run_uses_cuda("auto", driver_has_gpu=False, cluster_gpus=0)
    assert not run_uses_cuda("cpu", driver_has_gpu=True, cluster_gpus=8)


def test_on_cuda_every_learner_rank_asks_for_a_whole_gpu_and_every_worker_for_a_share():
    # the defaults ask for no GPU: fine on CPU, refused on CUDA (every actor would land on cuda:0)
    check_resources(RaySettings.from_config(ray_options()), uses_cuda=False, nodes=[{"CPU": 4.0}])
    with pytest.raises(RuntimeError, match=r"ray_learner_gpus=0 on CUDA.*--ray-learner-gpus 1"):
        check_resources(RaySettings.from_config(ray_options()), uses_cuda=True, nodes=[NODE_8_GPUS])
    with pytest.raises(RuntimeError, match=r"ray_worker_gpus=0 on CUDA.*--ray-worker-gpus 1"):
        check_resources(RaySettings.from_config(ray_options(ray_learner_gpus=1)), uses_cuda=True, nodes=[NODE_8_GPUS])
    # device "cuda" is refused when the config is made, before any model loads
    with pytest.raises(ConfigError, match=r"ray_learner_gpus=0 on CUDA"):
        ray_options(device="cuda")
    # a fraction never suits a learner rank (two NCCL ranks on one device); a worker's share may be one
    with pytest.raises(ConfigError, match=r"ray_learner_gpus=0.5: a learner rank needs a whole GPU"):
        ray_options(ray_learner_gpus=0.5)
    with pytest.raises(ConfigError, match=r"ray_worker_gpus=2: a rollout worker uses one device"):
        ray_options(ray_worker_gpus=2)
    shared = ray_options(ray_learner_gpus=1, ray_worker_gpus=0.5, device="cuda")
    check_resources(RaySettings.from_config(shared), uses_cuda=True, nodes=[NODE_8_GPUS])
    # vLLM engines sharing a GPU each take at most their worker's share of its memory
    engines = {"ray_learner_gpus": 1, "ray_worker_gpus": 0.5, "device": "cuda", "generator": "vllm"}
    with pytest.raises(ConfigError, match=r"vllm_gpu_memory_utilization=0.6 with ray_worker_gpus=0.5"):
        ray_options(**engines, vllm_gpu_memory_utilization=0.6)
    ray_options(**engines, vllm_gpu_memory_utilization=0.45)
    with pytest.raises(ConfigError, match=r"ray_learner_cpus=0 and ray_learner_gpus=0"):
        ray_options(ray_learner_cpus=0)
    with pytest.raises(ConfigError, match=r"ray_learner_timeout_s=0"):
        ray_options(ray_learner_timeout_s=0)
    # a CPU run of a GPU layout (the paper preset with --device cpu) would wait for GPUs: refused, the fix named
    with pytest.raises(
        ConfigError, match=r"device=cpu with ray_worker_gpus=1 .*--ray-worker-gpus 0 --ray-learner-gpus 0"
    ):
        ray_options(ray_learner_gpus=1, ray_worker_gpus=1, device="cpu")


def test_the_cluster_check_counts_gpus_and_keeps_the_learner_ranks_on_one_node():
    # the paper preset's layout: 4 workers and 4 FSDP learner ranks, a GPU each, on one 8-GPU node
    paper = make_config("paper-qwen3-4b")
    assert (paper.ray_workers, paper.ray_learners) == (4, 4)
    check_resources(RaySettings.from_config(paper), uses_cuda=True, nodes=[NODE_8_GPUS])
    with pytest.raises(RuntimeError, match=r"has 64 CPUs and 7 GPUs.*asks for 8 CPUs and 8 GPUs"):
        check_resources(RaySettings.from_config(paper), uses_cuda=True, nodes=[{"CPU": 64.0, "GPU": 7.0}])
    # enough GPUs in all, but the two ranks' placement group (STRICT_PACK) fits on neither node
    nodes = [{"CPU": 8.0, "GPU": 4.0}, {"CPU": 8.0, "GPU": 4.0}]
    ranks = ray_options(ray_workers=2, ray_worker_gpus=1, ray_learners=2, ray_learner_gpus=3)
    with pytest.raises(RuntimeError, match=r"2 learner ranks must share one node \(2 CPUs and 6 GPUs in all"):
        check_resources(RaySettings.from_config(ranks), uses_cuda=True, nodes=nodes)
    check_resources(RaySettings.from_config(ranks), uses_cuda=True, nodes=[*nodes, {"CPU": 2.0, "GPU": 8.0}])


# -- on a local cluster -----------------------------------------------------------------------------------


@pytest.mark.learning
@pytest.mark.ray
def test_learner_ranks_run_in_one_placement_group_wait_at_most_the_timeout_and_leave_nothing(cluster, quick_model):
    config = make_config(
        "tiny-cpu", {"model": str(quick_model), "ray_workers": 1, "ray_learners": 2, "ray_learner_timeout_s": 3}
    )
    model, _, _ = load_model(ModelSource.from_config(config), torch.device("cpu"), log=lambda *_: None)
    group = LearnerGroup(
        RaySettings.from_config(config),
        LearnerRankSettings.from_config(config, str(quick_model)),
        model,
        None,
        version=0,
    )

    def group_of(rank) -> str | None:  # in the actor (nested, so Ray ships it by value)
        group = ray.util.get_current_placement_group()
        return group.id.hex() if group is not None else None

    try:
        assert ray.get([r.__ray_call__.remote(group_of) for r in group.ranks]) == [group.placement_group.id.hex()] * 2
        # a bundle per rank, each holding what one rank asks for (so each rank holds one of them)
        assert group.placement_group.bundle_specs == [{"CPU": 1.0}, {"CPU": 1.0}]
        assert ray.util.placement_group_table(group.placement_group)["strategy"] == "STRICT_PACK"

        # rank 0 enters a collective that rank 1 never joins: the process group's timeout ends the wait
        def lone_all_reduce(rank) -> None:
            torch.distributed.all_reduce(torch.ones(1))

        with pytest.raises(ray.exceptions.RayTaskError, match=r"(?i)timed? ?out"):
            ray.get(group.ranks[0].__ray_call__.remote(lone_all_reduce), timeout=120)
    finally:
        group.shutdown()
    assert ray.util.placement_group_table(group.placement_group)["state"] == "REMOVED"


@pytest.mark.ray
def test_a_learner_group_the_cluster_cannot_place_fails_saying_what_was_asked_and_what_is_there(cluster, quick_model):
    config = make_config(
        "tiny-cpu", {"model": str(quick_model), "ray_workers": 1, "ray_learners": 2, "ray_learner_cpus": 3}
    )
    model, _, _ = load_model(ModelSource.from_config(config), torch.device("cpu"), log=lambda *_: None)
    with pytest.raises(RuntimeError, match=r"2 x 3 CPUs and 0 GPUs, all on one node.*not placed within 2 s.*4 CPUs"):
        LearnerGroup(
            RaySettings.from_config(config),
            LearnerRankSettings.from_config(config, str(quick_model)),
            model,
            None,
            version=0,
            placement_timeout_s=2,
        )
    assert all(g["state"] == "REMOVED" for g in ray.util.placement_group_table().values())


@pytest.mark.ray
def test_rollout_workers_the_cluster_cannot_place_fail_at_start_instead_of_waiting(cluster, quick_model):
    config = small_config(quick_model, 1, ray_workers=2, ray_worker_cpus=3)  # 6 CPUs asked, 4 in the cluster
    with pytest.raises(RuntimeError, match=r"of 2 rollout workers did not start within 2 s: each asks for 3 CPUs"):
        RolloutPool(
            RaySettings.from_config(config), WorkerSettings.from_config(config, str(quick_model)), start_timeout_s=2
        )
    deadline = time.monotonic() + 60
    while ray.available_resources().get("CPU", 0.0) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ray.available_resources().get("CPU", 0.0) == 4, "the workers that started were not stopped"


@pytest.mark.learning
@pytest.mark.ray
def test_a_chunk_that_fails_every_time_ends_the_run_with_the_workers_error(cluster, quick_model):
    """A game no worker can build fails the same way on every try: replayed on a restarted worker until
    `CHUNK_ATTEMPTS`, then the run stops with the worker's own error and traceback, instead of looping."""
    config = small_config(quick_model, 1, ray_workers=1, ray_max_restarts=5)
    model, _, _ = load_model(ModelSource.from_config(config), torch.device("cpu"), log=lambda *_: None)
    pool = RolloutPool(RaySettings.from_config(config), WorkerSettings.from_config(config, str(quick_model)))
    try:
        bad = [Match("NoSuchGame-v0", seed, {"player_0": LEARNER, "player_1": LEARNER}) for seed in (11, 12)]
        with pytest.raises(ChunkFailedError) as failed:
            pool.collect(bad, 0, ray.put(play_weights(model)), batch=2)
        message = str(failed.value)
        assert message.startswith(
            f"a chunk of 2 games (NoSuchGame-v0; game seeds [11, 12]) failed {CHUNK_ATTEMPTS} times"
        )
        # the worker's own error, with its traceback (from the worker's play down to the registry that refused)
        assert "in play" in message and "spiral_envs/registry.py" in message
        assert message.splitlines()[-1].startswith("spiral_envs.registry.UnknownEnvError: unknown env id 'NoSuchGame")
        stats = pool.take_stats()
        assert stats.failures == CHUNK_ATTEMPTS
        # each failure replaced the worker: Ray restarted it, a new process, before the next try
        assert stats.restarts == CHUNK_ATTEMPTS - 1
    finally:
        pool.shutdown()


def gone(pid: int, within_s: float = 60.0) -> bool:
    """Whether process `pid` ends within `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.learning
@pytest.mark.ray
@pytest.mark.parametrize(
    ("sig", "report"),
    [
        (signal.SIGKILL, ["learner rank 1 of 2 died (its process exited or was killed), during `update`"]),
        # a rank that hangs (stopped, or stuck in a kernel): rank 0 waits in a collective until the timeout
        (
            signal.SIGSTOP,
            [
                "learner rank 0 of 2 raised RuntimeError: ",
                "learner rank(s) 1 had not answered",
            ],
        ),
    ],
    ids=["killed", "stopped"],
)
def test_a_dead_or_hung_learner_rank_ends_the_run_with_its_last_checkpoint(cluster, quick_model, tmp_path, sig, report):
    """Kill (or stop) learner rank 1's process mid-run: the run must end, not hang, naming the rank, the
    last checkpoint and the resume command; leave no rank process or placement group behind; and (once, for
    the killed rank) resume from that checkpoint to the end."""
    steps = 5
    config = small_config(quick_model, steps, ray_workers=1, ray_learners=2, ray_learner_timeout_s=15)
    run_dir = tmp_path / "run"
    trainer = Trainer(config, run_dir)
    group = trainer.learner
    pids = ray.get([rank.__ray_call__.remote(lambda rank: os.getpid()) for rank in group.ranks])
    ended: list[BaseException | None] = []

    def run() -> None:
        try:
            trainer.run()
            ended.append(None)
        except BaseException as err:
            ended.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while thread.is_alive() and trainer.step < 2:
        time.sleep(0.01)
    os.kill(pids[1], sig)
    thread.join(timeout=300)
    assert not thread.is_alive(), "the run hangs after a learner rank failed"
    assert ended and isinstance(ended[0], LearnerRankError), ended
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None
    lines = str(ended[0]).splitlines()
    assert lines[0].startswith(report[0]), lines[0]
    assert all(any(line.startswith(start) for line in lines) for start in report[1:]), lines
    # (rank 0 may report the dead peer too, or not, by timing: a line more or less)
    resume = f"The run's last checkpoint is {checkpoint}; continue from it with: spiral-train --resume {run_dir}"
    assert any(line.startswith("Every learner rank was stopped") and line.endswith(resume) for line in lines), lines
    assert all(gone(pid) for pid in pids), "a learner rank's process outlived the run"
    assert group.ranks == [] and ray.util.placement_group_table(group.placement_group)["state"] == "REMOVED"

    if sig != signal.SIGKILL:
        return  # the checkpoint is written the same way either way: resuming once is enough
    resumed = Trainer(config, run_dir, resume=True)
    assert 1 <= resumed.step == int(checkpoint.name.removeprefix("step_")) < steps
    resumed.run()
    assert [r["step"] for r in read_metrics(run_dir)] == list(range(steps + 1))

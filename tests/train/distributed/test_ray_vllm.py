"""Ray rollout workers generating with vLLM, for real on CPU: each worker is a Ray actor with its own vLLM engine.

What must hold: the weights the driver sends reach the engine in another process (its sampled-token logprobs
are the learner's recomputation with those weights), and a Ray run trains every step on games of the
current weights. The model is the quick tiny model of conftest.py built with 2 heads of 32 (vLLM's CPU
attention has no kernel for head_dim 16). Skipped where Ray or vLLM is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")
pytest.importorskip("vllm")

from helpers import perturb, small_config  # noqa: E402

from spiral_train.config.views import ModelSource, RaySettings, WorkerSettings  # noqa: E402
from spiral_train.distributed.learner_group import play_weights  # noqa: E402
from spiral_train.distributed.rollouts import RolloutPool  # noqa: E402
from spiral_train.learner import make_batch, response_logprobs  # noqa: E402
from spiral_train.metrics import read_metrics  # noqa: E402
from spiral_train.models.loading import load_model  # noqa: E402
from spiral_train.rollout.collector import Match  # noqa: E402
from spiral_train.rollout.records import LEARNER  # noqa: E402
from spiral_train.trainer import Trainer  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.vllm, pytest.mark.learning]

KV_CACHE_MB = 16
"""Enough for these games (the tiny model's KV cache is 512 bytes a token), and light on 2 cores."""


def vllm_config(model: Path, steps: int, **extra):
    return small_config(model, steps, generator="vllm", vllm_kv_cache_mb=KV_CACHE_MB, **extra)


def max_gap_to_learner(model, turns, temperature: float) -> float:
    """Largest gap between the sampled tokens' logprobs and the learner's recomputation under `model`."""
    batch = make_batch(turns, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        logp, _ = response_logprobs(model, batch, temperature)
    return max(abs(x - y) for row, t in enumerate(turns) for x, y in zip(t.logprobs, logp[row].tolist()))


def test_weights_sent_by_the_driver_reach_the_workers_vllm_engine(cluster, quick_vllm_model):
    config = vllm_config(quick_vllm_model, 1, ray_workers=1, games_per_step=4, num_envs=4)
    model, _, _ = load_model(ModelSource.from_config(config), torch.device("cpu"), log=lambda *_: None)
    pool = RolloutPool(RaySettings.from_config(config), WorkerSettings.from_config(config, str(quick_vllm_model)))
    try:
        backend = ray.get(pool.workers[0].__ray_call__.remote(lambda worker: type(worker.generator).__name__))
        assert backend == "VLLMGenerator"

        def play(version: int, first_seed: int) -> list:
            matches = [
                Match("KuhnPoker-v1", first_seed + i, {"player_0": LEARNER, "player_1": LEARNER}) for i in range(4)
            ]
            finished = pool.collect(matches, version, ray.put(play_weights(model)), batch=4)
            assert [f.version for f in finished] == [version] * 4
            turns = [t for f in finished for t in f.turns]
            assert turns and all(len(t.logprobs) == len(t.response_ids) > 0 for t in turns)
            return turns

        before = play(0, first_seed=0)
        assert max_gap_to_learner(model, before, config.temperature) < 1e-4
        perturb(model, seed=1)
        # the change is visible to the learner: a worker that kept the old weights would fail the check below
        assert max_gap_to_learner(model, before, config.temperature) > 1e-2
        after = play(1, first_seed=100)
        assert max_gap_to_learner(model, after, config.temperature) < 1e-4
    finally:
        pool.shutdown()


def test_two_vllm_workers_train_every_step_on_current_weights(cluster, quick_vllm_model, tmp_path):
    steps = 3
    config = vllm_config(quick_vllm_model, steps, ray_workers=2, games_per_step=4, num_envs=2)
    run_dir = tmp_path / "run"
    trainer = Trainer(config, run_dir)
    trainer.run()
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == list(range(steps + 1))
    # sync mode: every game of step s was played by the weights after s-1 updates, on both workers
    assert trainer.rollouts.sample_versions == {s: [s - 1] * 4 for s in range(1, steps + 1)}
    for r in records[1:]:
        assert (r["train/staleness_max"], r["train/games"], r["ray/worker_failures"]) == (0, 4, 0)
        assert r["grad_norm"] > 0
        # on-policy: the update's first pass sees ratio 1, so the workers' engines held the learner's weights
        assert abs(r["approx_kl"]) < 1e-4, r["approx_kl"]
    assert trainer.rollouts.workers.workers == [] and trainer.learner.ranks == []

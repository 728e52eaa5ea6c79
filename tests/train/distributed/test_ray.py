"""The trainer on a real local Ray cluster: rollout workers, a learner group, async staleness, a killed worker.

Every test runs the real actors (separate processes) on the tiny quick model; the one learning test uses the
tiny default model through the CLI. One cluster serves the whole module (starting Ray costs seconds).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import signal
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from helpers import run_e2e, small_config  # noqa: E402

from spiral_train.checkpoint import latest_checkpoint  # noqa: E402
from spiral_train.config import ConfigError, make_config  # noqa: E402
from spiral_train.config.views import LearnerRankSettings, ModelSource, RaySettings  # noqa: E402
from spiral_train.distributed.learner_group import LearnerGroup  # noqa: E402
from spiral_train.distributed.shared_weights import unpack  # noqa: E402
from spiral_train.learner import Learner, LearnerSettings, make_batch, response_logprobs  # noqa: E402
from spiral_train.metrics import read_metrics  # noqa: E402
from spiral_train.models.loading import load_model, reference_model  # noqa: E402
from spiral_train.rae import RAE, RoleReturn  # noqa: E402
from spiral_train.rollout.collector import Collector, ModelPolicy  # noqa: E402
from spiral_train.rollout.generation import HFGenerator  # noqa: E402
from spiral_train.rollout.records import LEARNER, Match  # noqa: E402
from spiral_train.trainer import Trainer  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.learning]

STEPS = 5
COMPARED = ("train/reward_mean", "loss", "grad_norm", "train/response_len", "train/invalid_rate", "entropy")


def ray_config(model: Path, **extra):
    settings = {"games_per_step": 8, "num_envs": 4, "eval_games": 4, "eval_every": STEPS, "ray_workers": 2}
    steps = extra.pop("steps", STEPS)
    return small_config(model, steps, **{**settings, **extra})


@pytest.fixture(scope="module")
def sync_run(cluster, quick_model, tmp_path_factory):
    """An uninterrupted sync run with two workers: the reference the other tests compare against."""
    run_dir = tmp_path_factory.mktemp("ray") / "sync"
    trainer = Trainer(ray_config(quick_model), run_dir)
    trainer.run()
    return trainer, run_dir


def test_two_workers_and_a_learner_train_every_step_on_current_weights(sync_run):
    trainer, run_dir = sync_run
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == list(range(STEPS + 1))
    # sync mode: every game of step s was played by the weights after s-1 updates, and no game was lost
    assert trainer.rollouts.sample_versions == {s: [s - 1] * 8 for s in range(1, STEPS + 1)}
    for r in records[1:]:
        assert (r["train/staleness_max"], r["train/staleness_mean"], r["train/games"]) == (0, 0.0, 8)
        assert r["ray/worker_failures"] == 0 and r["train/stale_dropped"] == 0
    # the learner really updated the weights, and the driver's copy (what is saved and evaluated) has them
    assert all(r["grad_norm"] > 0 for r in records[1:])
    assert "eval/KuhnPoker-v1/random/win_rate" in records[-1]
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint is not None and checkpoint.name == f"step_{STEPS:06d}"
    saved = torch.load(checkpoint / "state.pt", weights_only=False)
    assert saved["learner"]["optimizer"]["state"], "the learner group's Adam moments are checkpointed"
    # actors are gone once the run ends, and so is the learner ranks' placement group
    assert trainer.rollouts.workers.workers == [] and trainer.learner.ranks == []
    assert ray.util.placement_group_table(trainer.learner.placement_group)["state"] == "REMOVED"


def test_a_killed_worker_is_restarted_and_no_step_is_lost_or_changed(sync_run, quick_model, tmp_path):
    """One worker only, so the run can only finish if Ray restarts it and the pool uses it again; the same
    4-game chunks as the two-worker reference, so the run must equal it step by step."""
    _, reference_dir = sync_run
    run_dir = tmp_path / "killed"
    trainer = Trainer(ray_config(quick_model, ray_workers=1, ray_chunk_games=4), run_dir)
    first_pid = trainer.rollouts.workers.pids[0]
    killed = threading.Event()

    def kill_worker_mid_play() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed.is_set():
            pool = trainer.rollouts.workers
            if trainer.step >= 2 and any(c for _, c, _ in list(pool.in_flight.values())):
                os.kill(first_pid, signal.SIGKILL)
                killed.set()
            time.sleep(0.001)

    thread = threading.Thread(target=kill_worker_mid_play, daemon=True)
    thread.start()
    trainer.run()
    thread.join()
    assert killed.is_set(), "the worker was never killed mid-play; the test proves nothing"

    got, expected = read_metrics(run_dir), read_metrics(reference_dir)
    assert [r["step"] for r in got] == list(range(STEPS + 1))
    assert sum(r["ray/worker_failures"] for r in got[1:]) >= 1, "the kill should fail a call in flight"
    assert sum(r["ray/worker_restarts"] for r in got[1:]) == 1, "the worker should come back once, restarted"
    # the chunk the dead worker held was played again with the same weights and seed: same run, step by step
    for g, e in zip(got[1:], expected[1:]):
        for key in COMPARED:
            assert g[key] == pytest.approx(e[key], rel=1e-5, abs=1e-7), (g["step"], key)

    # and a driver that stops resumes from its checkpoint with --resume, on Ray again
    resumed = Trainer(ray_config(quick_model, steps=STEPS + 1), run_dir, resume=True)
    assert resumed.step == STEPS
    resumed.run()
    assert [r["step"] for r in read_metrics(run_dir)] == list(range(STEPS + 2))


def test_a_worker_that_raises_is_replaced_and_no_step_is_lost_or_changed(sync_run, quick_model, tmp_path):
    """A task error, not a death: the worker's generation raises an out-of-memory error mid-chunk. The pool
    must kill the worker so that Ray restarts it (a fresh process, without the fault), and play the chunk
    again with the same seed; one worker and 4-game chunks, so the run must equal the reference step by step."""
    _, reference_dir = sync_run
    run_dir = tmp_path / "raised"
    trainer = Trainer(ray_config(quick_model, ray_workers=1, ray_chunk_games=4), run_dir)
    worker = trainer.rollouts.workers.workers[0]

    def fail_one_generation(worker, call: int) -> int:  # runs in the worker (nested, so Ray ships it by value)
        """From now on, the worker's `call`-th batch of generation raises what a CUDA out-of-memory raises, once
        in this process; returns the process id."""
        generate = worker.generator.generate
        calls = 0

        def generate_or_fail(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == call:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (raised by the test)")
            return generate(*args, **kwargs)

        worker.generator.generate = generate_or_fail
        return os.getpid()

    # about 3 batches of generation per chunk of 4 games, 2 chunks per step: the 8th falls in step 2 or 3
    assert ray.get(worker.__ray_call__.remote(fail_one_generation, 8)) == trainer.rollouts.workers.pids[0]
    trainer.run()

    got, expected = read_metrics(run_dir), read_metrics(reference_dir)
    assert [r["step"] for r in got] == list(range(STEPS + 1))
    assert sum(r["ray/worker_failures"] for r in got[1:]) == 1, "the raised error should fail one call"
    assert sum(r["ray/worker_restarts"] for r in got[1:]) == 1, "the worker should be replaced once"
    assert sum(r["ray/games_replayed"] for r in got[1:]) == 4, "its chunk should be played again"
    for g, e in zip(got[1:], expected[1:]):
        for key in COMPARED:
            assert g[key] == pytest.approx(e[key], rel=1e-5, abs=1e-7), (g["step"], key)


def test_async_mode_never_trains_on_samples_older_than_max_staleness(cluster, quick_model, tmp_path):
    for max_staleness in (1, 0):
        run_dir = tmp_path / f"async{max_staleness}"
        trainer = Trainer(ray_config(quick_model, async_mode=True, max_staleness=max_staleness), run_dir)
        trainer.run()
        records = read_metrics(run_dir)
        assert [r["step"] for r in records] == list(range(STEPS + 1))
        for step, versions in trainer.rollouts.sample_versions.items():
            assert len(versions) == 8
            # trained at step s means the learner has done s-1 updates: staleness = (s-1) - version
            assert all(0 <= step - 1 - v <= max_staleness for v in versions), (step, versions)
            assert records[step]["train/staleness_max"] == max(step - 1 - v for v in versions)
        if max_staleness == 1:
            # workers played the next batch during each update: async really happened
            assert any(r["train/staleness_max"] == 1 for r in records[1:])
        else:
            # those games came back one update old: dropped, counted, and played again with fresh weights
            assert sum(r["train/stale_dropped"] for r in records[1:]) > 0


def assert_same_update(got: torch.Tensor, want: torch.Tensor, where) -> None:
    """The same weights up to rounding. Adam divides by the gradient's own size, so a weight whose summed
    gradient is near 0 carries the rounding of a two-rank sum into its step: measured, 10-14 of the 131,072
    embedding weights of rarely seen tokens up to 2e-5 off (3.5% of a 4e-4 step), every other weight < 1e-6.
    A wrong sum moves many weights by a whole step, so: at most 0.1% of weights over 1e-6, none over 5e-5."""
    off = (got - want).abs()
    assert float(off.max()) < 5e-5 and int((off > 1e-6).sum()) <= off.numel() // 1000, (where, float(off.max()))


@pytest.mark.parametrize(("strategy", "kl_coef"), [("ddp", 0.0), ("fsdp", 0.0), ("fsdp", 0.5)])
def test_two_rank_learner_group_makes_the_one_process_update(cluster, quick_model, strategy, kl_coef):
    """Replicated (ddp) or sharded (fsdp), two ranks make the one-process update: weights, metrics, Adam state."""
    config = make_config(
        "tiny-cpu",
        {
            "model": str(quick_model),
            "ray_workers": 1,
            "ray_learners": 2,
            "ray_learner_strategy": strategy,
            "micro_batch_size": 2,
            "kl_coef": kl_coef,  # > 0: the sharded reference model joins every micro-batch, padding ones too
        },
    )
    model, tokenizer, _ = load_model(ModelSource.from_config(config), torch.device("cpu"))
    generator = HFGenerator(model, tokenizer)
    rng = torch.Generator().manual_seed(0)
    policy = ModelPolicy(generator, tokenizer, "qwen3", 1.0, 8, rng)
    matches = [Match("KuhnPoker-v1", i, {"player_0": LEARNER, "player_1": LEARNER}) for i in range(8)]
    results = Collector(8, {"KuhnPoker-v1": {"num_rounds": 1}}).play(matches, {LEARNER: policy})
    turns = [t for r in results for t in r.turns]
    returns = [RoleReturn("KuhnPoker-v1", t.role, r.returns[t.role]) for r in results for t in r.turns]
    RAE("none").assign(returns)
    for turn, rr in zip(turns, returns):
        turn.advantage = rr.advantage
    assert len(turns) >= 5, len(turns)  # every game has at least one turn
    turns = turns[:5]  # an odd count gives the ranks unequal shards (3 and 2), the case worth testing
    shard_sizes = (len(turns[0::2]), len(turns[1::2]))
    assert shard_sizes[0] > 2 >= shard_sizes[1], "rank 0 should run more micro-batches of 2 than rank 1"

    driver_model = copy.deepcopy(model)  # the group's driver copy; `model` is the one-process learner's
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ref_model = reference_model(LearnerSettings.from_config(config), model, str(quick_model), torch.device("cpu"))
    single = Learner(model, LearnerSettings.from_config(config), torch.device("cpu"), tokenizer.pad_token_id, ref_model)
    group = LearnerGroup(
        RaySettings.from_config(config),
        LearnerRankSettings.from_config(config, str(quick_model)),
        driver_model,
        single.state_dict(),
        version=0,
    )
    try:
        for batch in (turns, turns[:1]):  # the second update leaves rank 1 without a single turn
            expected = single.update(batch)
            got = group.update(batch)
            if strategy == "ddp":
                rank_weights = [unpack(w) for w in ray.get([r.weights.remote() for r in group.ranks])]
                for name in model.state_dict():
                    assert torch.equal(rank_weights[0][name], rank_weights[1][name]), f"ranks diverged on {name}"
            for name, tensor in model.state_dict().items():
                assert_same_update(driver_model.state_dict()[name], tensor, (len(batch), name))
            for key in ("loss", "grad_norm", "clip_frac", "entropy", "kl_ref"):
                assert got[key] == pytest.approx(expected[key], rel=1e-4, abs=1e-6), (len(batch), key)
            if kl_coef and batch is not turns:  # after one update the policy has left its reference
                assert expected["kl_ref"] > 1e-6, expected["kl_ref"]
        # the group's learner state is the one-process format: a checkpoint resumes with any strategy
        state, reference = group.state_dict(), single.state_dict()
        assert state["scheduler"] == reference["scheduler"]
        assert state["optimizer"]["param_groups"] == reference["optimizer"]["param_groups"]
        assert state["optimizer"]["state"].keys() == reference["optimizer"]["state"].keys()
        for index, moments in reference["optimizer"]["state"].items():
            for name, value in moments.items():
                assert torch.allclose(state["optimizer"]["state"][index][name], value, atol=1e-7), (index, name)
        group.load_state_dict(state)  # and loads back into the ranks (sharded again under fsdp): same next update
        single.update(turns[:3])
        group.update(turns[:3])
        for name, tensor in model.state_dict().items():
            assert_same_update(driver_model.state_dict()[name], tensor, ("reloaded", name))
    finally:
        group.shutdown()
    assert group.version == 3
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items()), "the updates changed nothing"


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_lora_on_ray_trains_adapters_only_and_workers_play_the_merged_weights(cluster, quick_model, tmp_path, strategy):
    config = ray_config(
        quick_model, ray_workers=1, ray_learners=2, ray_learner_strategy=strategy, lora_rank=4, eval_games=0, steps=1
    )
    trainer = Trainer(config, tmp_path / strategy)
    try:
        before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.train_step()
        after = trainer.model.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert changed and all("lora_" in k for k in changed), sorted(changed)[:5]

        # the worker, sent the current weights, samples from the merged model: its logprobs are the learner's
        worker = trainer.rollouts.workers.workers[0]
        ray.get(worker.set_weights.remote(trainer.learner.version, trainer.learner.weights_ref))
        match = Match("KuhnPoker-v1", 7, {"player_0": LEARNER, "player_1": LEARNER})
        _, _, results = ray.get(worker.play.remote([match], 0, False))
        turns = results[0].turns
        batch = make_batch(turns, trainer.tokenizer.pad_token_id, torch.device("cpu"))
        with torch.no_grad():
            logp, _ = response_logprobs(trainer.model, batch, config.temperature)
        played = batch.sampler_logprobs * batch.response_mask
        merge_error = float((logp * batch.response_mask - played).abs().max())
        assert merge_error < 1e-4
        with torch.no_grad(), trainer.model.disable_adapter():
            base_logp, _ = response_logprobs(trainer.model, batch, config.temperature)
        # one small update moves confident format tokens little: the adapters' effect must stand far above
        # the merge's rounding, not above a fixed size
        adapter_effect = float((base_logp * batch.response_mask - played).abs().max())
        assert adapter_effect > 10 * merge_error and adapter_effect > 1e-6, (adapter_effect, merge_error)

        checkpoint = trainer.save()
        assert (checkpoint / "model" / "adapter_model.safetensors").exists()
        assert not (checkpoint / "model" / "model.safetensors").exists(), "a LoRA checkpoint holds the adapter only"
    finally:
        trainer.close()
    resumed = Trainer(dataclasses.replace(config, steps=2), tmp_path / strategy, resume=True)
    assert resumed.step == 1
    assert all(torch.equal(v, after[k]) for k, v in resumed.model.state_dict().items())
    resumed.run()
    assert [r["step"] for r in read_metrics(tmp_path / strategy)][-1] == 2


def test_ray_options_are_checked(quick_model):
    with pytest.raises(ConfigError, match="ray_workers"):
        make_config("tiny-cpu", {"async_mode": True})
    with pytest.raises(ConfigError, match="ray_learners"):
        make_config("tiny-cpu", {"ray_workers": 2, "ray_learners": 0})
    with pytest.raises(ConfigError, match="max_staleness"):
        make_config("tiny-cpu", {"ray_workers": 1, "max_staleness": -1})
    with pytest.raises(ConfigError, match="ray_learner_strategy"):
        make_config("tiny-cpu", {"ray_workers": 1, "ray_learners": 2, "ray_learner_strategy": "zero"})
    with pytest.raises(ConfigError, match="2 ranks or more"):
        make_config("tiny-cpu", {"ray_workers": 1, "ray_learner_strategy": "fsdp"})


def test_tiny_default_runs_end_to_end_on_two_workers(cluster, spiral_cache, tmp_path):
    """The end-to-end run of test_train_e2e, with games on two Ray workers and a Ray learner."""
    records = run_e2e(tmp_path / "run", "--ray-workers", "2")
    assert all(r["train/staleness_max"] == 0 for r in records[1:])

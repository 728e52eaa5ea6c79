"""Opponent pools on Ray: pool games played on the rollout workers, against the snapshot drawn for them.

Real actors on a local cluster and the tiny quick model, as in tests/train/distributed/test_ray.py. The driver
owns the pool (list, draws, snapshots on disk); the workers get each drawn snapshot's weights through the object
store and play it in their own frozen model. One sync run serves most tests (its actors are asked what they hold
before they stop); an async run checks that games queued a step ahead keep the snapshot drawn when they were
planned.
"""

from __future__ import annotations

import copy
from itertools import pairwise
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from helpers import small_config  # noqa: E402
from safetensors.torch import load_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from spiral_train.checkpoint import load_state  # noqa: E402
from spiral_train.distributed.rollouts import RolloutPool  # noqa: E402
from spiral_train.metrics import read_metrics  # noqa: E402
from spiral_train.rollout.opponent_pool import WEIGHTS_FILE  # noqa: E402
from spiral_train.rollout.records import LEARNER, POOL, GameResult, Match  # noqa: E402
from spiral_train.trainer import Trainer  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.learning]

STEPS = 5
ENV = "KuhnPoker-v1"


def pool_config(model: Path, **extra):
    # near greedy, the quick model opens with a valid bet, so the pool seat gets to answer
    # (see tests/train/rollout/test_pool.py)
    settings = {
        "games_per_step": 8,
        "num_envs": 4,
        "ray_workers": 2,
        "pool_every": 2,
        "pool_share": 0.5,
        "pool_size": 2,
        "keep_checkpoints": 10,
        "log_transcripts": 8,
        "temperature": 0.02,
        # at temperature 0.02 the gradient of the logits is 50x larger: a small step keeps these bookkeeping
        # runs from diverging to NaN logits (measured with the quick model at lr 2e-3, async test)
        "lr": 1e-4,
    }
    steps = extra.pop("steps", STEPS)
    return small_config(model, steps, **{**settings, **extra})


class RecordingRollouts:
    """Wraps a trainer's rollout source: keeps each plan's draw and each step's batch as the driver got it back."""

    def __init__(self, trainer: Trainer) -> None:
        self.inner = trainer.rollouts
        self.pool = trainer.pool
        self.batches: list[list[GameResult]] = []
        self.planned: dict[int, int] = {}
        """Seed of each pool game -> the snapshot drawn by the plan that made it."""
        self.draws: list[int | None] = []

    def submit(self, matches: list[Match], players) -> None:
        self.draws.append(self.pool.drawn)
        self.planned.update({m.seed: self.pool.drawn for m in matches if POOL in m.seats.values()})
        self.inner.submit(matches, players)

    def collect(self) -> tuple[list[GameResult], dict]:
        results, record = self.inner.collect()
        self.batches.append(results)
        return results, record

    def close(self) -> None:
        self.inner.close()


def recording(trainer: Trainer) -> Trainer:
    trainer.rollouts = RecordingRollouts(trainer)
    return trainer


def run_keeping_workers(trainer: Trainer) -> list[tuple[int | None, int, dict]]:
    """Run the loop, then ask each worker what its pool model holds, then stop the actors."""

    def pool_snapshot(worker) -> tuple[int | None, int, dict[str, torch.Tensor]]:
        # runs inside the worker (a nested function, so Ray ships it by value): its pool model's snapshot
        # step, how many loads it took, and its weights
        model = worker.players["pool"].generator.model if "pool" in worker.players else None
        weights = {} if model is None else {k: v.cpu() for k, v in model.state_dict().items()}
        return worker.pool_step, worker.pool_loads, weights

    close, trainer.close = trainer.close, lambda: None  # the run leaves the actors up for the question below
    try:
        trainer.run()
        return ray.get([w.__ray_call__.remote(pool_snapshot) for w in trainer.rollouts.inner.workers.workers])
    finally:
        close()


def snapshot_weights(like: torch.nn.Module, folder: Path) -> dict[str, torch.Tensor]:
    model = copy.deepcopy(like)
    load_model(model, str(folder / WEIGHTS_FILE))
    return model.state_dict()


def pool_games(batch: list[GameResult]) -> list[GameResult]:
    return [r for r in batch if POOL in r.match.seats.values()]


@pytest.fixture(scope="module")
def pool_run(cluster, quick_model, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ray-pool") / "run"
    trainer = recording(Trainer(pool_config(quick_model), run_dir))
    held = run_keeping_workers(trainer)
    return trainer, run_dir, held


def test_workers_play_the_drawn_snapshot_and_only_the_learner_is_trained(pool_run, quick_model):
    trainer, run_dir, held = pool_run
    played = [sorted({r.match.pool_step for r in pool_games(batch)}) for batch in trainer.rollouts.batches]
    assert len(played) == STEPS and all(len(p) == 1 for p in played)  # sync: the step's one draw
    played = [p[0] for p in played]
    assert played == trainer.rollouts.draws
    assert played[:2] == [0, 0] and played[4] in (2, 4)  # snapshots at 0, 2, 4 (pool_size 2): the draw changed

    pool_answers = 0
    for batch in trainer.rollouts.batches:
        games = pool_games(batch)
        assert len(games) == 4  # pool_share 0.5 of 8
        learner_roles = set()
        for result in games:
            (learner_role,) = result.match.learner_roles()
            learner_roles.add(learner_role)
            (pool_role,) = [role for role, kind in result.match.seats.items() if kind == POOL]
            assert {t.role for t in result.turns} <= {learner_role}  # the snapshot's turns are not trained
            answers = [t for t in result.transcript if t["agent"] == pool_role]
            assert all("tokens" in t for t in answers)  # answered by a model seat, not a scripted agent
            pool_answers += len(answers)
        # the learner sits in both seats (its turns in a seat can be none: a snapshot's invalid first move ends
        # the game before the learner moves)
        assert learner_roles == {"player_0", "player_1"}
        assert any(r.turns for r in games)
    assert pool_answers > 0, "the snapshot never answered; the test proves nothing"

    # each worker played pool games every step (a 4-game chunk holds 2): it holds the last draw, with the
    # weights of that snapshot's file, and loaded a snapshot only when the draw changed
    changes = 1 + sum(a != b for a, b in pairwise(played))
    assert changes >= 2
    for step, loads, weights in held:
        assert (step, loads) == (played[-1], changes)
        on_disk = snapshot_weights(trainer.model, run_dir / "pool" / f"step-{step:06d}")
        assert on_disk.keys() == weights.keys()
        assert all(torch.equal(weights[k], v) for k, v in on_disk.items())
        start = AutoModelForCausalLM.from_pretrained(quick_model).state_dict()
        assert any(not torch.equal(weights[k], v) for k, v in start.items()), "the snapshot is the start: proves little"
    # the driver keeps in the object store only the snapshot it may still send
    assert set(trainer.rollouts.inner.pool_refs) <= {played[-1]}


def test_pool_metrics_and_rae_baselines_per_opponent_kind(pool_run):
    trainer, run_dir, _ = pool_run
    records = read_metrics(run_dir)[1:]
    assert [r["train/pool/size"] for r in records] == [1, 1, 2, 2, 2]
    assert [r["train/pool/share"] for r in records] == [0.5] * STEPS
    assert [r["train/pool/opponent_step"] for r in records] == trainer.rollouts.draws
    assert all(0.0 <= r["train/pool/win_rate"] <= 1.0 for r in records)
    assert all(r["train/staleness_max"] == 0 and r["train/games"] == 8 for r in records)
    baselines = {k for k in records[-1] if k.startswith("rae/baseline/")}
    roles = ("player_0", "player_1")
    assert baselines == {f"rae/baseline/{ENV}/{role}{kind}" for role in roles for kind in ("", "/pool")}
    assert {k[2] for k in trainer.rae.baselines} == {"self", "pool"}


def test_resume_from_a_checkpoint_gives_the_same_steps(pool_run, quick_model, tmp_path):
    """A run stopped after step 3 and resumed on Ray makes steps 4 and 5 of the uninterrupted run."""
    _, reference_dir, _ = pool_run
    split = tmp_path / "split"
    Trainer(pool_config(quick_model, steps=3), split).run()
    assert load_state(split / "checkpoints" / "step_000003")["pool"]["steps"] == [0, 2]

    resumed = recording(Trainer(pool_config(quick_model), split, resume=True))
    assert resumed.step == 3 and resumed.pool.steps == [0, 2]
    resumed.run()
    got, expected = read_metrics(split), read_metrics(reference_dir)
    assert resumed.pool.steps == [2, 4]
    assert resumed.rollouts.draws == [r["train/pool/opponent_step"] for r in expected[4:]]  # the same draws
    assert [r["step"] for r in got] == list(range(STEPS + 1))
    keys = ["train/pool/opponent_step", "train/pool/win_rate", "train/pool/size", "train/reward_mean", "loss"]
    keys += ["grad_norm", *(k for k in expected[-1] if k.startswith("rae/baseline/"))]
    for g, e in zip(got[4:], expected[4:]):
        for key in keys:
            assert g[key] == pytest.approx(e[key], rel=1e-5, abs=1e-7), (g["step"], key)


def test_async_games_queued_ahead_keep_the_snapshot_they_were_planned_with(cluster, quick_model, tmp_path):
    """Async mode plans the next batch (and draws again) before the update; those games must still play
    their own plan's snapshot, so each worker may switch snapshots between chunks of one batch."""
    run_dir = tmp_path / "async"
    config = pool_config(quick_model, steps=4, async_mode=True, max_staleness=1, pool_every=1, pool_size=4)
    trainer = recording(Trainer(config, run_dir))
    held = run_keeping_workers(trainer)
    records = read_metrics(run_dir)[1:]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(r["train/staleness_max"] <= 1 for r in records)
    assert any(r["train/staleness_max"] == 1 for r in records)  # games did play during an update

    used = [r for batch in trainer.rollouts.batches for r in pool_games(batch)]
    assert used and all(r.match.pool_step == trainer.rollouts.planned[r.match.seed] for r in used)
    # batch s is collected after s + 2 plans (the first step plans twice): its games were mostly planned one
    # draw before the latest, draws[s + 1]
    assert len(trainer.rollouts.draws) == len(trainer.rollouts.batches) + 1
    behind = [
        r
        for s, batch in enumerate(trainer.rollouts.batches)
        for r in pool_games(batch)
        if r.match.pool_step != trainer.rollouts.draws[s + 1]
    ]
    draws = trainer.rollouts.draws
    assert behind, f"no game played a snapshot other than the latest draw (draws {draws}); nothing tested"
    for s, batch in enumerate(trainer.rollouts.batches):
        opponent_steps = [r.match.pool_step for r in pool_games(batch)]
        assert records[s]["train/pool/opponent_step"] == pytest.approx(sum(opponent_steps) / len(opponent_steps))
    for step, _, weights in held:
        on_disk = snapshot_weights(trainer.model, run_dir / "pool" / f"step-{step:06d}")
        assert all(torch.equal(weights[k], v) for k, v in on_disk.items())


def test_chunks_are_cut_where_the_pool_snapshot_changes():
    """A worker holds one snapshot: games replayed together (or a batch spanning two plans) are split by it."""
    rollouts = RolloutPool.__new__(RolloutPool)  # `_chunks` needs no actors: only the chunk size
    rollouts.chunk_size = 3
    snapshots = [0, None, 0, None, 2, None, 2, 2, 4, None]  # None: a self-play game
    self_play, vs_pool = {"player_0": LEARNER, "player_1": LEARNER}, {"player_0": LEARNER, "player_1": POOL}
    games = [(i, Match(ENV, i, self_play) if s is None else Match(ENV, i, vs_pool, s)) for i, s in enumerate(snapshots)]
    chunks = [[key for key, _ in chunk] for chunk in rollouts._chunks(games)]
    assert chunks == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]  # 8 plays another snapshot than 6 and 7
    # without pool games, only the chunk size cuts (the chunks, hence sample seeds, of runs without a pool)
    plain = [(i, Match(ENV, i, self_play)) for i in range(7)]
    assert [[key for key, _ in chunk] for chunk in rollouts._chunks(plain)] == [[0, 1, 2], [3, 4, 5], [6]]

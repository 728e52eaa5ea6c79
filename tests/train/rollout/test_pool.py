"""Opponent pools (fictitious self-play): snapshots, the share of pool games, who is trained, RAE, resume."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from helpers import small_config
from safetensors.torch import load_model
from transformers import AutoModelForCausalLM

from spiral_train.checkpoint import latest_checkpoint, load_state, trained_weights
from spiral_train.cli import main
from spiral_train.metrics import baseline_key, read_metrics
from spiral_train.rae import RAE, RoleReturn, assign_advantages
from spiral_train.rollout.opponent_pool import WEIGHTS_FILE
from spiral_train.rollout.records import LEARNER, POOL
from spiral_train.trainer import Trainer


def pool_config(model: Path, steps: int, **extra):
    settings = {"num_envs": 6, "log_transcripts": 0, "pool_every": 2, "pool_size": 2, "pool_share": 0.5}
    return small_config(model, steps, **{**settings, **extra})


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def snapshot_weights(like: torch.nn.Module, folder: Path) -> dict[str, torch.Tensor]:
    model = copy.deepcopy(like)
    load_model(model, str(folder / WEIGHTS_FILE))
    return weights(model)


def pool_folders(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "pool").iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--pool-every", "2", "--opponent", "strong"], "pool_every=2 needs opponent='self', not 'strong'"),
        (["--pool-every", "-1"], "pool_every=-1 must be an integer >= 0"),
        (["--pool-share", "1.5"], "pool_share=1.5 must be in [0, 1]"),
        (["--pool-size", "0"], "pool_size=0 must be a positive integer"),
    ],
)
def test_bad_pool_options_fail_at_start(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_rae_keeps_one_baseline_per_opponent_kind():
    rae = RAE("ema", decay=0.5)
    batch = [
        RoleReturn("K", "player_0", 1.0),
        RoleReturn("K", "player_0", -1.0, opponent="pool"),
        RoleReturn("K", "player_0", 1.0),
        RoleReturn("K", "player_0", 1.0, opponent="pool"),
    ]
    rae.assign(batch)
    # self: b=0 -> A=1, b=0.5; then A=1-0.5=0.5, b=0.75. pool: b=0 -> A=-1, b=-0.5; then A=1+0.5=1.5, b=0.25.
    # One shared baseline would give [1, -1.5, 1.25, 0.875]: the pool game's loss would leak into self-play.
    assert [r.advantage for r in batch] == pytest.approx([1.0, -1.0, 0.5, 1.5])
    assert rae.baselines == pytest.approx({("K", "player_0", "self"): 0.75, ("K", "player_0", "pool"): 0.25})
    assert [baseline_key(k) for k in sorted(rae.baselines)] == [
        "rae/baseline/K/player_0/pool",
        "rae/baseline/K/player_0",
    ]

    grouped = RAE("batch")
    batch = [RoleReturn("K", "player_0", 1.0), RoleReturn("K", "player_0", -1.0, opponent="pool")]
    grouped.assign(batch)
    assert [r.advantage for r in batch] == [0.0, 0.0]  # each is alone in its group: no mean shared across kinds

    other = RAE("ema")
    other.load_state_dict(rae.state_dict())
    assert other.baselines == rae.baselines


def test_a_baseline_without_its_opponent_kind_is_refused_by_name():
    old = {"mode": "ema", "decay": 0.95, "baselines": [["K", "player_0", 0.25], ["K", "player_1", -0.25]]}
    rae = RAE("ema")
    with pytest.raises(ValueError, match=r"RAE baseline \['K', 'player_0', 0.25\] is not \[env id, role, opponent"):
        rae.load_state_dict(old)


def test_the_pool_plans_its_share_of_games_spread_out_with_alternating_seats(quick_model, tmp_path):
    trainer = Trainer(pool_config(quick_model, steps=1), tmp_path / "run")
    pool = trainer.pool
    spread = {0.0: [], 0.25: [0, 3], 1 / 3: [0, 3], 0.5: [0, 2, 4], 1.0: [0, 1, 2, 3, 4, 5]}
    for share, indices in spread.items():
        pool.share = share
        policy, roles = pool.plan(0, trainer.model, trainer.policy, 6)
        assert sorted(roles) == indices, share
        assert [roles[i] for i in indices] == ["player_0", "player_1", "player_0", "player_1", "player_0", "player_1"][
            : len(indices)
        ]
        if indices:
            assert policy is pool.policy and policy.generator.model is not trainer.model
            assert not any(p.requires_grad for p in policy.generator.model.parameters())
    pool.share = 0.5
    _, roles = pool.plan(1, trainer.model, trainer.policy, 6)
    assert [roles[i] for i in sorted(roles)] == ["player_1", "player_0", "player_1"]  # the next step: the other seat
    assert pool.steps == [0]  # step 1 is not a snapshot step with pool_every=2


def test_only_the_learners_seat_is_trained_in_pool_games(quick_model, tmp_path):
    # at temperature 1 the quick model's opening answer is nearly always invalid and ends the game; near greedy
    # it opens with a valid bet, so both seats get to answer
    trainer = Trainer(pool_config(quick_model, steps=1, log_transcripts=6, temperature=0.02), tmp_path / "run")
    results = trainer.collector.play(trainer.matches(), trainer.players)
    pool_policy = trainer.pool.policy
    assert trainer.pool.steps == [0] and pool_policy is not None and trainer.players[POOL] is pool_policy
    pool_games = [r for r in results if POOL in r.match.seats.values()]
    assert len(pool_games) == 3  # pool_share 0.5 of 6 games
    assert {r.match.pool_step for r in pool_games} == {0} and {r.match.pool_step for r in results} == {0, None}

    learner_roles, pool_answers = set(), 0
    for result in pool_games:
        (learner_role,) = [role for role, kind in result.match.seats.items() if kind == LEARNER]
        (pool_role,) = [role for role, kind in result.match.seats.items() if kind == POOL]
        learner_roles.add(learner_role)
        assert {t.role for t in result.turns} <= {learner_role}
        assert len(result.turns) == len([t for t in result.transcript if t["agent"] == learner_role])
        pool_answers += len([t for t in result.transcript if t["agent"] == pool_role])
    assert pool_answers > 0  # the snapshot did play
    assert {t.role for r in pool_games for t in r.turns} == {"player_0", "player_1"}  # the learner, in both seats
    assert learner_roles == {"player_0", "player_1"}
    self_play = [r for r in results if r not in pool_games]
    assert {t.role for r in self_play for t in r.turns} == {"player_0", "player_1"}  # self-play trains both seats

    assign_advantages(results, trainer.rae, trainer.config.state_baseline)
    pool_keys = {k for k in trainer.rae.baselines if k[2] == "pool"}
    assert pool_keys == {("KuhnPoker-v1", role, "pool") for role in learner_roles}
    assert {k[2] for k in trainer.rae.baselines} == {"self", "pool"}


def test_snapshots_every_k_steps_capped_at_pool_size(quick_model, tmp_path):
    run_dir = tmp_path / "run"
    trainer = Trainer(pool_config(quick_model, steps=5, keep_checkpoints=10), run_dir)
    trainer.run()
    records = read_metrics(run_dir)[1:]
    # snapshots at steps 0, 2, 4 (each before that step's update); the pool keeps the newest 2
    assert [r["train/pool/size"] for r in records] == [1, 1, 2, 2, 2]
    assert trainer.pool.steps == [2, 4]
    assert pool_folders(run_dir) == ["step-000002", "step-000004"]
    assert [r["train/pool/share"] for r in records] == [0.5] * 5
    assert [r["train/pool/opponent_step"] for r in records][:2] == [0, 0]
    for record in records:
        assert 0.0 <= record["train/pool/win_rate"] <= 1.0
    assert any(key.endswith("/pool") and key.startswith("rae/baseline/") for key in records[-1])
    assert "rae/baseline/KuhnPoker-v1/player_0" in records[-1]  # self-play keys keep their name

    # a snapshot holds the learner's weights at its step: those the checkpoint written after that many updates
    # trains on (its last iterate; the checkpoint's model/ is the policy average the run ships)
    for step in (2, 4):
        checkpoint = AutoModelForCausalLM.from_pretrained(trained_weights(run_dir / "checkpoints" / f"step_{step:06d}"))
        snap = snapshot_weights(trainer.model, run_dir / "pool" / f"step-{step:06d}")
        assert all(torch.equal(snap[k], v) for k, v in weights(checkpoint).items()), step
    two, four = (snapshot_weights(trainer.model, run_dir / "pool" / f"step-{s:06d}") for s in (2, 4))
    assert any(not torch.equal(two[k], four[k]) for k in two)  # the learner moved: the snapshots differ
    # the one frozen opponent holds the snapshot drawn for the last step (it is reloaded when the draw changes)
    drawn = snapshot_weights(trainer.model, run_dir / "pool" / f"step-{trainer.pool.drawn:06d}")
    frozen = weights(trainer.pool.policy.generator.model)
    assert all(torch.equal(frozen[k], v) for k, v in drawn.items())


def test_resume_restores_the_pool_and_gives_the_same_next_step(quick_model, tmp_path):
    extra = {"pool_every": 1, "pool_size": 2}
    straight = Trainer(pool_config(quick_model, steps=3, **extra), tmp_path / "straight")
    straight.run()
    expected = read_metrics(tmp_path / "straight")

    split = tmp_path / "split"
    Trainer(pool_config(quick_model, steps=2, **extra), split).run()
    assert load_state(latest_checkpoint(split))["pool"]["steps"] == [0, 1]
    # a crash after the checkpoint: the next step's snapshot half-written, and a wrong one under its real name
    (split / "pool" / ".tmp-step-000002-999999").mkdir()
    (split / "pool" / "step-000002").mkdir()
    (split / "pool" / "step-000002" / WEIGHTS_FILE).write_bytes(b"garbage")
    resumed = Trainer(pool_config(quick_model, steps=3, **extra), split, resume=True)
    assert resumed.step == 2 and resumed.pool.steps == [0, 1]
    assert pool_folders(split) == ["step-000000", "step-000001"]
    resumed.run()
    got = read_metrics(split)

    assert [r["step"] for r in got] == [0, 1, 2, 3]
    keys = ["train/pool/win_rate", "train/pool/opponent_step", "train/reward_mean", "loss", "grad_norm"]
    keys += [k for k in expected[3] if k.startswith("rae/baseline/")]
    assert any(k.endswith("/pool") for k in keys)
    for key in keys:
        assert got[3][key] == expected[3][key], key
    assert pool_folders(split) == pool_folders(tmp_path / "straight") == ["step-000001", "step-000002"]
    for name, tensor in weights(straight.model).items():
        assert torch.equal(tensor, weights(resumed.model)[name]), name
    frozen = weights(resumed.pool.policy.generator.model)
    for name, tensor in weights(straight.pool.policy.generator.model).items():
        assert torch.equal(tensor, frozen[name]), name


def test_a_crash_after_a_snapshot_drops_one_still_resumes(quick_model, tmp_path):
    """A dropped snapshot's folder outlives the pool list until a checkpoint no longer names it."""
    run_dir = tmp_path / "run"
    config = pool_config(quick_model, steps=2, pool_every=1, pool_size=1)
    trainer = Trainer(config, run_dir)
    trainer.run()
    trainer.train_step()  # step 3 snapshots step 2 and drops step 1; then the process dies before its checkpoint
    assert trainer.pool.steps == [2]
    assert pool_folders(run_dir) == ["step-000001", "step-000002"]
    resumed = Trainer(config, run_dir, resume=True)
    assert resumed.step == 2 and resumed.pool.steps == [1]
    assert pool_folders(run_dir) == ["step-000001"]  # the snapshot written after the checkpoint is gone
    resumed.config.steps = 3
    resumed.run()
    assert resumed.pool.steps == [2] and pool_folders(run_dir) == ["step-000002"]

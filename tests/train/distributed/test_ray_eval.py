"""On Ray, evaluation is sampled on the rollout workers' engines, never by a model on the driver."""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from helpers import small_config  # noqa: E402

from spiral_train.distributed.remote_generation import RemoteGenerator  # noqa: E402
from spiral_train.trainer import Trainer  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.learning]


def test_evaluation_runs_on_the_workers_while_the_drivers_copy_is_garbage(cluster, quick_model, tmp_path):
    """The driver's copy of the weights (CPU, for checkpoints) is overwritten with NaN: sampling from it would
    raise at once. Evaluation and a reasoning benchmark still run, on the workers, with the real weights."""
    pytest.importorskip("math_verify")
    lines: list[str] = []
    config = small_config(
        quick_model,
        1,
        ray_workers=2,
        eval_games=4,
        eval_opponents=["random", "exploiter"],
        eval_env_ids=["KuhnPoker-v1", "TicTacToe-v0"],
        eval_probe_samples=8,
        eval_probe_positions=6,
        eval_reasoning=["gym:basic_arithmetic:3"],
        eval_reasoning_max_new_tokens=8,
    )
    trainer = Trainer(config, tmp_path / "run", log=lines.append)
    try:
        assert isinstance(trainer.generator, RemoteGenerator)
        assert next(trainer.model.parameters()).device.type == "cpu"
        with torch.no_grad():
            for param in trainer.model.parameters():
                param.fill_(float("nan"))
        record = trainer.evaluate()
    finally:
        trainer.close()
    assert record["eval/KuhnPoker-v1/random/games"] == 4 and record["eval/KuhnPoker-v1/exploiter/games"] == 4
    assert record["eval/TicTacToe-v0/random/games"] == 4
    assert record["eval/KuhnPoker-v1/strategy/invalid_rate"] < 0.5  # the real weights answer in format
    assert 0.0 <= record["eval/TicTacToe-v0/strategy/optimal_move_rate"] <= 1.0
    assert 0.0 <= record["eval/reasoning/gym-basic_arithmetic-3/accuracy"] <= 1.0
    # the cost of an evaluation is stated at start: 12 x 8 Kuhn Poker answers, 6 x 1 TicTacToe answers, 12 games
    (cost,) = [line for line in lines if line.startswith("evaluation at step 0")]
    assert "on the rollout workers' engines" in cost and "102 strategy-probe answers and 12 games" in cost


def test_the_remote_generator_splits_a_call_over_the_workers_reproducibly(cluster, quick_model, tmp_path):
    """The same call with the same RNG state gives the same answers, one per prompt, in order."""
    trainer = Trainer(small_config(quick_model, 1, ray_workers=2, eval_games=0), tmp_path / "run")
    try:
        prompts = trainer.policy.prompt_ids([f"Observation {i}" for i in range(7)])

        def draw():
            rng = torch.Generator().manual_seed(3)
            return trainer.generator.generate(prompts, temperature=1.0, max_new_tokens=6, generator=rng)

        first, second = draw(), draw()
    finally:
        trainer.close()
    assert len(first) == 7 and [g.token_ids for g in first] == [g.token_ids for g in second]
    assert all(len(g.token_ids) == len(g.logprobs) <= 6 for g in first)

"""The tiny model's warm-up data and loss: uniformly random legal play, every legal answer of a turn at once."""

from __future__ import annotations

import random

import pytest

import spiral_envs

torch = pytest.importorskip("torch")

from spiral_train.models.warmup import random_play_turns, weighted_answer_nll  # noqa: E402


def test_a_turn_trains_on_all_its_legal_answers_when_they_are_few():
    turns = random_play_turns(("TicTacToe-v0",), {}, random.Random(0), games_per_env=3)
    first = turns[0]
    assert first.legal == tuple(f"[{cell}]" for cell in range(9))
    answers = first.answers(random.Random(0), 9)
    assert answers == [spiral_envs.boxed(move) for move in first.legal]
    later = turns[3]  # three moves made: six cells left, each answered once
    assert sorted(later.answers(random.Random(0), 9)) == sorted(spiral_envs.boxed(m) for m in later.legal)
    assert len(later.legal) == 6


def test_a_turn_with_many_legal_moves_trains_on_a_sample_of_distinct_ones():
    turns = random_play_turns(("SimpleNegotiation-v1",), {}, random.Random(0), games_per_env=1)
    turn = turns[0]
    assert len(turn.legal) > 9
    answers = turn.answers(random.Random(1), 9)
    assert len(answers) == len(set(answers)) == 9
    assert {spiral_envs.extract_move(a) for a in answers} <= set(turn.legal)


def test_restated_turns_say_the_movers_own_card_first():
    turns = random_play_turns(("KuhnPoker-v1",), {}, random.Random(0), games_per_env=5, restate=True)
    assert len(turns) > 10
    for turn in turns:
        card = turn.observation.split("Your card: ")[-1][0]
        assert turn.prefix == f"Card: {card}. "
        assert all(answer.startswith(turn.prefix) for answer in turn.answers(random.Random(0), 9))


def test_the_weighted_loss_is_each_answers_summed_token_nll(quick_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(quick_model)
    model = AutoModelForCausalLM.from_pretrained(quick_model).eval()
    prompt = tokenizer("Your legal moves: [1], [2]", add_special_tokens=False).input_ids
    answers = [tokenizer(spiral_envs.boxed(m), add_special_tokens=False).input_ids for m in ("[1]", "[2]")]
    rows = [(prompt, a) for a in answers]
    with torch.no_grad():
        got = weighted_answer_nll(model, rows, torch.tensor([0.25, 0.75]), tokenizer.pad_token_id)
        want = 0.0
        for weight, answer in zip((0.25, 0.75), answers):
            ids = torch.tensor([prompt + answer])
            labels = torch.tensor([[-100] * len(prompt) + answer])
            want += weight * model(input_ids=ids, labels=labels).loss.item() * len(answer)
    assert got.item() == pytest.approx(want, rel=1e-4)


@pytest.mark.learning
def test_a_killed_build_leaves_a_folder_that_the_next_build_removes(tmp_path, monkeypatch):
    """A build killed mid-way leaves `.build-<pid>-*`; the next build deletes it (its pid is gone), not a live one."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from spiral_train.models.tiny import TinySpec, cache_root, tiny_model_path

    env = {**os.environ, "SPIRAL_CACHE": str(tmp_path)}
    build = "from spiral_train.models.tiny import TinySpec, tiny_model_path as p; p(TinySpec(warmup_steps=5000))"
    proc = subprocess.Popen([sys.executable, "-c", build], env=env, stdout=subprocess.DEVNULL)
    root = tmp_path / "tiny"
    deadline = time.time() + 120
    while not list(root.glob(".build-*")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (left,) = root.glob(".build-*")
    assert left.name.startswith(f".build-{proc.pid}-")
    live = root / f".build-{os.getpid()}-live"  # a build of a process that still runs (this one) is kept
    live.mkdir()

    monkeypatch.setenv("SPIRAL_CACHE", str(tmp_path))
    assert cache_root() == root
    spec = TinySpec(env_ids=("KuhnPoker-v1",), vocab_size=512, warmup_steps=1, warmup_batch=2)
    assert (tiny_model_path(spec, log=lambda *_: None) / "config.json").exists()
    assert sorted(p.name for p in root.glob(".build-*")) == [live.name]

"""The collector batches turns of many games into one model call and attributes each sample correctly."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from spiral_train.rollout.collector import Collector, Match, ModelPolicy, scripted
from spiral_train.rollout.generation import HFGenerator
from spiral_train.rollout.records import LEARNER, RANDOM


class RecordingGenerator(HFGenerator):
    """The real generator, noting the size of each batched call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sizes: list[int] = []

    def generate(self, prompt_ids, **kwargs):
        self.batch_sizes.append(len(prompt_ids))
        return super().generate(prompt_ids, **kwargs)


def make_policy(path, seed=0):
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    generator = RecordingGenerator(model, tokenizer)
    return ModelPolicy(generator, tokenizer, "qwen3", 1.0, 8, torch.Generator().manual_seed(seed))


SELF_PLAY = {"player_0": LEARNER, "player_1": LEARNER}


def test_turns_of_different_games_and_roles_share_one_call(quick_model):
    policy = make_policy(quick_model)
    ids = ["KuhnPoker-v1", "TicTacToe-v0"] * 4
    matches = [Match(env_id, seed, SELF_PLAY) for seed, env_id in enumerate(ids)]
    collector = Collector(num_envs=8, env_kwargs={"KuhnPoker-v1": {"num_rounds": 1}})
    results = collector.play(matches, {LEARNER: policy})
    sizes = policy.generator.batch_sizes
    assert len(results) == 8
    assert sizes[0] == 8  # the first tick asks all eight games at once
    assert sum(sizes) == sum(len(r.turns) for r in results)
    assert len(sizes) < sum(sizes)
    for result in results:
        assert [t.game for t in result.turns] == [result.index] * len(result.turns)
        for turn in result.turns:
            prompt = policy.tokenizer.decode(turn.prompt_ids)
            assert turn.env_id == result.match.env_id
            assert f"You are Player {turn.role[-1]}" in prompt
            assert ("Kuhn Poker" in prompt) == (turn.env_id == "KuhnPoker-v1")
            assert len(turn.logprobs) == len(turn.response_ids) > 0
        assert sum(result.returns.values()) == 0  # zero-sum


def test_scripted_opponent_seat_produces_no_samples(quick_model):
    policy = make_policy(quick_model)
    matches = [Match("TicTacToe-v0", s, {"player_0": LEARNER, "player_1": RANDOM}) for s in range(4)]
    matches += [Match("TicTacToe-v0", s, {"player_1": LEARNER, "player_0": RANDOM}) for s in range(4)]
    results = Collector(num_envs=4).play(matches, {LEARNER: policy, RANDOM: scripted(RANDOM)})
    for result in results:
        (model_role,) = result.match.learner_roles()
        assert {t.role for t in result.turns} <= {model_role}
        model_turns = [t for t in result.transcript if t["agent"] == model_role]
        assert len(model_turns) == len(result.turns)


def test_same_seeds_give_the_same_games(quick_model):
    def play():
        policy = make_policy(quick_model, seed=3)
        matches = [Match("KuhnPoker-v1", s, SELF_PLAY) for s in range(6)]
        return Collector(num_envs=3).play(matches, {LEARNER: policy})

    first, second = play(), play()
    assert [r.returns for r in first] == [r.returns for r in second]
    assert [[t.response_ids for t in r.turns] for r in first] == [[t.response_ids for t in r.turns] for r in second]


@pytest.mark.parametrize(("top_k", "top_p"), [(0, 1.0), (3, 1.0), (0, 0.6), (5, 0.8)])
def test_behaviour_logprobs_match_the_learner_recomputation(quick_model, top_k, top_p):
    """The PPO ratio starts at 1 only if sampling and training agree on every token's logprob, with the
    sampler's truncation too."""
    from spiral_train.learner import make_batch, response_logprobs

    policy = make_policy(quick_model)
    policy.top_k, policy.top_p = top_k, top_p
    matches = [Match("KuhnPoker-v1", s, SELF_PLAY) for s in range(4)]
    turns = [t for r in Collector(num_envs=4).play(matches, {LEARNER: policy}) for t in r.turns]
    batch = make_batch(turns, policy.tokenizer.pad_token_id, torch.device("cpu"))
    with torch.no_grad():
        logp, _ = response_logprobs(policy.generator.model, batch, 1.0, top_k, top_p)
        full, _ = response_logprobs(policy.generator.model, batch, 1.0)
    mask = batch.response_mask
    diff = ((logp - batch.sampler_logprobs) * mask).abs().max().item()
    assert diff < 1e-4
    if (top_k, top_p) != (0, 1.0):  # truncation renormalises: a kept token is more likely than untruncated
        assert ((logp - full) * mask).min().item() >= -1e-5
        assert ((logp - full) * mask).max().item() > 1e-3, "the truncation changed nothing; the test proves little"


def test_truncate_logits_keeps_the_top_k_then_the_top_p_nucleus():
    from spiral_train.rollout.generation import truncate_logits
    from spiral_train.rollout.generation.hf import sample

    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    logits = probs.log()
    kept = lambda out: (out > -1e8).squeeze(0).tolist()  # noqa: E731
    assert kept(truncate_logits(logits, top_k=2)) == [False, True, False, True]
    assert kept(truncate_logits(logits, top_p=0.8)) == [False, True, False, True]  # 0.5 + 0.3 reaches 0.8
    assert kept(truncate_logits(logits, top_p=0.81)) == [False, True, True, True]
    assert kept(truncate_logits(logits, top_p=0.01)) == [False, True, False, False]  # the top token always stays
    assert kept(truncate_logits(logits, top_k=3, top_p=0.5)) == [False, True, False, False]
    assert kept(truncate_logits(logits)) == [True] * 4
    rng = torch.Generator().manual_seed(0)
    draws = [sample(logits.expand(512, 4), 1.0, rng, top_p=0.8) for _ in range(2)]
    tokens = torch.cat([t for t, _ in draws])
    assert set(tokens.tolist()) == {1, 3}
    logp = torch.cat([lp for _, lp in draws])
    expected = torch.where(tokens == 1, torch.tensor(0.5 / 0.8).log(), torch.tensor(0.3 / 0.8).log())
    torch.testing.assert_close(logp, expected)


def test_an_answer_cut_off_at_the_token_limit_is_played_as_no_move(quick_model):
    """One new token cannot hold a whole answer: every game ends at its first turn, by an invalid move."""
    policy = make_policy(quick_model)
    policy.max_new_tokens = 1
    matches = [Match("KuhnPoker-v1", s, SELF_PLAY) for s in range(4)]
    for result in Collector(num_envs=4).play(matches, {LEARNER: policy}):
        assert result.outcome.invalid_move and result.outcome.offender == "player_0"
        (turn,) = result.turns
        assert turn.truncated and not turn.valid
        assert result.transcript[0]["truncated"]


def test_prompt_ids_are_the_tokenizers_own_for_each_prompt_and_never_shared(quick_model, monkeypatch):
    import spiral_envs
    from spiral_train.rollout import policy as policy_module

    policy = make_policy(quick_model)
    env = spiral_envs.make("KuhnPoker-v1")
    observations = []
    for seed in range(6):
        env.reset(seed=seed)
        observations += [str(env.observe("player_0")), str(env.observe("player_1"))]
    batch = observations + observations[:5]  # repeats within one call, and across calls below

    def direct(observation):
        text = spiral_envs.render_prompt("qwen3", observation)
        return policy.tokenizer(text, add_special_tokens=False).input_ids

    first = policy.prompt_ids(batch)
    assert first == [direct(o) for o in batch]
    first[0].append(-1)  # each prompt is its own list: a caller's edit reaches nobody else
    assert policy.prompt_ids(batch[:1]) == [direct(batch[0])] and first[len(observations)][-1] != -1
    monkeypatch.setattr(policy_module, "PROMPT_MEMO", 3)  # a full memo starts over and still answers right
    assert policy.prompt_ids(batch[::-1]) == [direct(o) for o in batch[::-1]]
    assert len(policy._prompt_memo) <= len(set(batch))

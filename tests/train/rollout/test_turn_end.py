"""A turn ends where the prompt template ends it, whatever the model's generation config says.

Qwen3-4B-Base's generation config stops only at `<|endoftext|>`, while the `qwen3` template closes a turn with
`<|im_end|>`. A base model that goes on past `<|im_end|>` writes a fake next turn, and the env would read its
move from there. Here a small model in a folder laid out that way (eos `<|endoftext|>` in its tokenizer, config
and generation config) is trained to answer `\\boxed{[check]}<|im_end|>` and then write a fake next turn holding
`[raise]`, a move Kuhn Poker never allows; with the template's end of turn as a stop token every answer ends at
`<|im_end|>`, and the move read is `[check]`.
"""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")

import spiral_envs  # noqa: E402
from spiral_envs.games.kuhn_strategy import KuhnPokerTheory  # noqa: E402
from spiral_train.config import make_config  # noqa: E402
from spiral_train.config.views import ModelSource  # noqa: E402
from spiral_train.models.loading import tiny_spec  # noqa: E402
from spiral_train.models.tiny import tiny_model_path  # noqa: E402
from spiral_train.models.warmup import weighted_answer_nll  # noqa: E402
from spiral_train.rollout.collector import Collector, ModelPolicy, scripted  # noqa: E402
from spiral_train.rollout.generation import HFGenerator, turn_end_ids  # noqa: E402
from spiral_train.rollout.records import LEARNER, RANDOM, Match  # noqa: E402

ANSWER = "\\boxed{[check]}<|im_end|>"
FAKE_TURN = "\n<|im_start|>user\nYour move.<|im_end|>\n<|im_start|>assistant\n\\boxed{[raise]}"
KWARGS = {"history": "current"}


@pytest.fixture(scope="module")
def fake_turn_model(spiral_cache, tmp_path_factory):
    """The tiny model with 2 heads of 32 (vLLM's CPU attention needs head_dim >= 32), in a folder whose eos is
    `<|endoftext|>`, trained on Kuhn Poker's first-hand prompts to write ANSWER, FAKE_TURN, `<|endoftext|>`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = tiny_model_path(
        tiny_spec(ModelSource.from_config(make_config("tiny-cpu", {"generator": "vllm"}))), log=lambda *_: None
    )
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.eos_token = "<|endoftext|>"
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.config.eos_token_id = end_of_text
    model.generation_config.eos_token_id = end_of_text
    prompts = probe_prompts(tokenizer)
    answer = [*tokenizer(ANSWER + FAKE_TURN, add_special_tokens=False).input_ids, end_of_text]
    rows = [(prompt, answer) for prompt in prompts]
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(200):
        loss = weighted_answer_nll(model, rows, torch.ones(len(rows)), tokenizer.pad_token_id) / len(rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    folder = tmp_path_factory.mktemp("fake-turn")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def load(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(folder)


def probe_prompts(tokenizer) -> list[list[int]]:
    probes = [p for p in KuhnPokerTheory("KuhnPoker-v1", KWARGS).probes() if p.key.round == 1]  # the first hand's
    texts = [spiral_envs.render_prompt("qwen3", p.observation) for p in probes]
    return tokenizer(texts, add_special_tokens=False).input_ids


@pytest.mark.learning
def test_the_folder_stops_only_at_endoftext_and_the_model_writes_a_fake_turn(fake_turn_model):
    """The premise: stopping where the model's own config says, the answer runs into the fake turn and the move
    read from it is `[raise]`."""
    model, tokenizer = load(fake_turn_model)
    assert tokenizer.eos_token == "<|endoftext|>" != "<|im_end|>"
    assert model.generation_config.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    generations = HFGenerator(model, tokenizer).generate(
        probe_prompts(tokenizer), temperature=0.0, max_new_tokens=48, generator=torch.Generator()
    )
    for gen in generations:
        assert "<|im_start|>user" in gen.text, gen.text
        assert spiral_envs.extract_move(gen.text) == "[raise]"


def test_the_qwen3_template_stops_at_im_end():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"a": 0, "<|im_end|>": 1, "<|endoftext|>": 2}
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="a")))
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_end|>", "<|endoftext|>"]})
    assert turn_end_ids(tokenizer, "qwen3") == [1]
    assert turn_end_ids(tokenizer, "none") == []
    # the template itself closes the user's turn with that token
    assert spiral_envs.render_prompt("qwen3", "x").endswith("<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.learning
def test_every_answer_ends_at_im_end_and_moves_are_read_from_the_turn(fake_turn_model):
    model, tokenizer = load(fake_turn_model)
    policy = ModelPolicy(HFGenerator(model, tokenizer), tokenizer, "qwen3", 0.0, 48, torch.Generator())
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for gen in policy.sample(probe_prompts(tokenizer)):
        assert gen.finish_reason == "stop" and gen.token_ids[-1] == im_end
        assert gen.text == "\\boxed{[check]}"
    # played for real: an answer is valid exactly where checking is legal (the fake turn's move is never read)
    rng = random.Random(0)
    seats = {"player_0": LEARNER, "player_1": RANDOM}
    matches = [Match("KuhnPoker-v1", rng.randrange(2**31), seats) for _ in range(12)]
    results = Collector(num_envs=12, env_kwargs={"KuhnPoker-v1": KWARGS}).play(
        matches, {LEARNER: policy, RANDOM: scripted(RANDOM)}
    )
    turns = [t for r in results for t in r.transcript if t["agent"] == "player_0"]
    assert turns and any("error" not in t for t in turns)
    for turn in turns:
        legal_line = turn["observation"].rsplit("legal moves", 1)[-1]
        assert ("error" not in turn) == ("[check]" in legal_line), turn


@pytest.mark.learning
@pytest.mark.vllm
def test_a_vllm_engine_stops_there_too(fake_turn_model):
    pytest.importorskip("vllm")
    from spiral_train.rollout.generation.vllm import VLLMGenerator

    model, tokenizer = load(fake_turn_model)
    engine = VLLMGenerator(model, tokenizer, model_path=str(fake_turn_model), max_model_len=1024, kv_cache_mb=64)
    try:
        policy = ModelPolicy(engine, tokenizer, "qwen3", 0.0, 48, torch.Generator())
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        for gen in policy.sample(probe_prompts(tokenizer)):
            assert gen.finish_reason == "stop" and gen.token_ids[-1] == im_end
            assert gen.text == "\\boxed{[check]}"
    finally:
        engine.close()

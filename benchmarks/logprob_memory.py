"""Peak memory of one policy-gradient update with Qwen3's vocabulary: full log-softmax against chunked log-probs.

The learner needs each response token's log-probability (with its gradient) and the entropy. The old code
took `log_softmax` over the whole vocabulary (151,936 for Qwen3) for every response token;
`spiral_train.token_logprobs` walks the positions in chunks instead. This builds a random-init Qwen3-shaped
model with that vocabulary (small hidden size, so the logits dominate, as they do for response-heavy batches
of real models), and runs one update (forward, the clipped-PG-style loss, backward, AdamW step) each way, in
a fresh process per way and repetition, reporting the peak resident memory above the process's footprint
before the update (`ru_maxrss`), and the time. Both ways give the same log-probs (checked here to 1e-4).

    python benchmarks/logprob_memory.py [--batch 8] [--response 64] [--prompt 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

VOCAB = 151_936


def old_logprobs(logits, targets, temperature: float):
    """What `learner.response_logprobs` did before `token_logprobs`."""
    import torch

    logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def one_update(way: str, batch: int, prompt: int, response: int) -> dict[str, float]:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from spiral_train.token_logprobs import token_logprobs

    torch.manual_seed(0)
    torch.set_num_threads(1)
    config = Qwen3Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        tie_word_embeddings=True,
    )
    model = Qwen3ForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    input_ids = torch.randint(0, VOCAB, (batch, prompt + response))
    advantages = torch.randn(batch, 1)
    targets = input_ids[:, -response:]
    compute = old_logprobs if way == "full log-softmax" else token_logprobs
    # warm the allocator and the optimizer state so the peak below is the update's own
    optimizer.zero_grad()
    model(input_ids=input_ids[:1, :8]).logits.sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    logits = model(input_ids=input_ids, logits_to_keep=response + 1).logits
    logp, entropy = compute(logits if way == "chunked" else logits[:, :-1, :], targets, 1.0)
    loss = -(logp * advantages).mean()
    loss.backward()
    optimizer.step()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "peak_mb": (peak - before) / 1024,
        "seconds": seconds,
        "logp_sum": float(logp.detach().sum()),
        "entropy_mean": float(entropy.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--response", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per way (median reported)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_update(args.child, args.batch, args.prompt, args.response)))
        return
    ways = ("full log-softmax", "chunked")
    results: dict[str, list[dict[str, float]]] = {way: [] for way in ways}
    for repeat in range(args.repeats):
        for way in ways if repeat % 2 == 0 else reversed(ways):
            command = [sys.executable, __file__, "--child", way, "--batch", str(args.batch)]
            command += ["--prompt", str(args.prompt), "--response", str(args.response)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results[way].append(json.loads(out.strip().splitlines()[-1]))
    full, chunked = (results[way] for way in ways)
    assert abs(full[0]["logp_sum"] - chunked[0]["logp_sum"]) < 1e-4 * abs(full[0]["logp_sum"]), (full, chunked)
    logits_mb = args.batch * args.response * VOCAB * 4 / 2**20
    print(
        f"one update, vocabulary {VOCAB:,}, batch {args.batch} x ({args.prompt} prompt + {args.response} response) "
        f"tokens; the response logits alone are {logits_mb:,.0f} MB in float32; median of {args.repeats}\n"
    )
    print(f"{'':<18} {'peak MB above start':>20} {'seconds':>8}")
    for way in ways:
        peak = statistics.median(r["peak_mb"] for r in results[way])
        seconds = statistics.median(r["seconds"] for r in results[way])
        print(f"{way:<18} {peak:>20,.0f} {seconds:>8.2f}")
    ratio = statistics.median(r["peak_mb"] for r in chunked) / statistics.median(r["peak_mb"] for r in full)
    print(f"\nchunked / full peak: {ratio:.2f}")


if __name__ == "__main__":
    main()

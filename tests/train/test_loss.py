"""The policy-gradient loss pushes the right way, by the right amount, and stops where the clip says."""

import pytest
import torch

from spiral_train.learner import clipped_pg_loss


def two_token_policy(p_first: float) -> torch.Tensor:
    """Logits of a softmax over two tokens whose first token has probability `p_first`."""
    return torch.tensor([torch.logit(torch.tensor(p_first)).item(), 0.0], requires_grad=True)


@pytest.mark.parametrize("advantage", [1.0, -0.5])
def test_gradient_sign_and_size_on_a_two_token_toy(advantage):
    p = 0.3
    logits = two_token_policy(p)
    logp = torch.log_softmax(logits, dim=-1)[0].reshape(1, 1)  # the sampled token is the first one
    old = logp.detach().clone()
    loss, clipped = clipped_pg_loss(logp, old, torch.tensor([advantage]), clip_eps=0.2)
    loss.sum().backward()
    # d(-A * ratio)/d(logit_0) at ratio 1 = -A * d(log p0)/d(logit_0) = -A * (1 - p)
    assert logits.grad[0].item() == pytest.approx(-advantage * (1 - p), rel=1e-5)
    assert logits.grad[1].item() == pytest.approx(advantage * (1 - p), rel=1e-5)
    assert clipped.item() == 0.0
    # a gradient step raises the sampled token's probability iff the advantage is positive
    with torch.no_grad():
        new_p = torch.softmax(logits - 0.1 * logits.grad, dim=-1)[0].item()
    assert (new_p > p) == (advantage > 0)


def test_clipped_ratio_gives_no_gradient():
    """Once the new policy already moved past 1+eps in the advantage's direction, the sample stops pushing."""
    logits = two_token_policy(0.6)
    logp = torch.log_softmax(logits, dim=-1)[0].reshape(1, 1)
    old = torch.log(torch.tensor([[0.4]]))  # ratio 1.5 > 1.2
    loss, clipped = clipped_pg_loss(logp, old, torch.tensor([1.0]), clip_eps=0.2)
    loss.sum().backward()
    assert clipped.item() == 1.0
    assert loss.item() == pytest.approx(-1.2)
    assert torch.all(logits.grad == 0)


def test_clip_does_not_hide_a_move_in_the_wrong_direction():
    """With a negative advantage and a ratio above 1+eps, the unclipped term still pulls the token down."""
    logits = two_token_policy(0.6)
    logp = torch.log_softmax(logits, dim=-1)[0].reshape(1, 1)
    old = torch.log(torch.tensor([[0.4]]))
    loss, _ = clipped_pg_loss(logp, old, torch.tensor([-1.0]), clip_eps=0.2)
    loss.sum().backward()
    assert loss.item() == pytest.approx(1.5, rel=1e-5)
    assert logits.grad[0].item() > 0  # descent lowers the first token's logit


# -- chunked token log-probabilities: the full log-softmax's values and gradients, in a fraction of the memory --


def full_log_softmax(logits, targets, temperature, top_k, top_p):
    """The reference: `log_softmax` over the whole (tempered, truncated) vocabulary, then gather."""
    from spiral_train.rollout.generation import truncate_logits

    logp_all = torch.log_softmax(truncate_logits(logits.float() / temperature, top_k, top_p), dim=-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp_all.gather(-1, targets[..., None]).squeeze(-1), entropy


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p", "dtype"),
    [
        (1.0, 0, 1.0, torch.float32),
        (0.7, 0, 1.0, torch.float32),
        (1.0, 5, 1.0, torch.float32),
        (0.6, 0, 0.9, torch.float32),
        (1.3, 3, 0.8, torch.float32),
        (1.0, 0, 1.0, torch.bfloat16),
    ],
)
@pytest.mark.parametrize("extra_position", [False, True])
def test_chunked_token_logprobs_equal_the_full_log_softmax(temperature, top_k, top_p, dtype, extra_position):
    from spiral_train.token_logprobs import token_logprobs

    torch.manual_seed(0)
    logits = torch.randn(3, 8 if extra_position else 7, 50, dtype=dtype, requires_grad=True)
    targets = torch.randint(0, 50, (3, 7))
    weights = torch.randn(3, 7)

    # chunks of 3 positions: several per row, and a row's last chunk short
    logp, entropy = token_logprobs(logits, targets, temperature, top_k, top_p, chunk_elements=50 * 3)
    (logp * weights).sum().backward()
    grad = logits.grad.clone()
    logits.grad = None
    ref_logp, ref_entropy = full_log_softmax(logits[:, :7], targets, temperature, top_k, top_p)
    (ref_logp * weights).sum().backward()

    assert logp.dtype == torch.float32 and logp.shape == targets.shape
    torch.testing.assert_close(logp, ref_logp, rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy, ref_entropy.detach(), rtol=0, atol=1e-5)
    torch.testing.assert_close(grad.float(), logits.grad.float(), rtol=0, atol=1e-6)
    if extra_position:
        assert not grad[:, 7].any()  # the position after the last token predicts nothing here


@pytest.mark.parametrize("chunk_elements", [50, 50 * 4, 50 * 100])
def test_masked_positions_cost_nothing_and_get_no_gradient(chunk_elements):
    """Padding (mask False) is 0 in both outputs and in the gradient; the real positions equal the full
    computation, however the chunks fall across rows."""
    from spiral_train.token_logprobs import token_logprobs

    torch.manual_seed(1)
    logits = torch.randn(4, 6, 50, requires_grad=True)
    targets = torch.randint(0, 50, (4, 6))
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0]]).bool()
    weights = torch.randn(4, 6)

    logp, entropy = token_logprobs(logits, targets, 0.8, 0, 1.0, mask=mask, chunk_elements=chunk_elements)
    (logp * weights).sum().backward()
    grad = logits.grad.clone()
    logits.grad = None
    ref_logp, ref_entropy = full_log_softmax(logits, targets, 0.8, 0, 1.0)
    (ref_logp * weights * mask).sum().backward()

    assert not logp[~mask].any() and not entropy[~mask].any()
    torch.testing.assert_close(logp[mask], ref_logp[mask], rtol=0, atol=1e-5)
    torch.testing.assert_close(entropy[mask], ref_entropy.detach()[mask], rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, logits.grad, rtol=0, atol=1e-6)
    assert not grad[~mask].any()


def test_chunked_token_logprobs_reject_mismatched_shapes():
    from spiral_train.token_logprobs import token_logprobs

    with pytest.raises(ValueError, match=r"logits \(2, 9, 5\) do not match targets \(2, 7\)"):
        token_logprobs(torch.zeros(2, 9, 5), torch.zeros(2, 7, dtype=torch.long), 1.0)

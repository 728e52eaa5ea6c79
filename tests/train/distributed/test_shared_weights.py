"""A state dict crosses Ray's object store bit for bit, and its reader gets no copy of its own.

The tensors cover what a transformers state dict holds (fp32 and bf16 matrices, a 0-dim buffer, an empty one,
a bool mask, a transposed view); another process reads them through `shared_weights.unpack` and loads them
into a module. Read-only arrays are Ray's sign that the reader's bytes are the object store's shared memory.
"""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray")
torch = pytest.importorskip("torch")

from spiral_train.distributed.shared_weights import pack, unpack  # noqa: E402


def state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "w": torch.randn(4, 3, generator=g),
        "half": torch.randn(5, generator=g).to(torch.bfloat16),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 7),
        "mask": torch.tensor([True, False, True]),
        "transposed": torch.arange(6, dtype=torch.int64).reshape(2, 3).t(),
    }


@ray.remote
def read_in_another_process(packed: dict) -> tuple[dict[str, torch.Tensor], bool, int]:
    """What the reader sees: its tensors (cloned to send back), whether any array it got was writable, and the
    bytes a module took from them."""
    writable = any(raw.flags.writeable for raw, _, _ in packed.values() if raw.size)
    weights = unpack(packed)
    module = torch.nn.Linear(3, 4, bias=False)
    module.load_state_dict({"weight": weights["w"]})  # loading is the reader's one copy
    return {k: v.clone() for k, v in weights.items()}, writable, module.weight.numel() * 4


def test_a_state_dict_crosses_the_object_store_exactly_and_is_read_in_place(cluster):
    sent = state()
    got, writable, loaded = ray.get(read_in_another_process.remote(ray.put(pack(sent))))
    assert set(got) == set(sent)
    for name, tensor in sent.items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape, name
        assert torch.equal(got[name], tensor), name
    assert not writable  # Ray hands numpy arrays over shared memory: no private copy was made
    assert loaded == 48


def test_pack_and_unpack_in_one_process_share_the_tensors_bytes():
    w = torch.randn(8, 8)
    back = unpack(pack({"w": w}))["w"]
    assert back.data_ptr() == w.data_ptr() and torch.equal(back, w)

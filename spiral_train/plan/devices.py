"""The devices a plan is checked against: stated (`8x80GB`, `1x80GB`, `2x24GiB`, `cpu:24GB`) or this machine's.

GB is 10^9 bytes and GiB 2^30. A GPU sold as "80 GB" (an H100) shows torch 85.0e9 bytes (79.2 GiB), so
`8x80GB` is on the safe side of the real card; state `79GiB` to plan against exactly what torch reports.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

UNITS = {"": 10**9, "GB": 10**9, "GIB": 2**30, "G": 10**9, "MB": 10**6, "MIB": 2**20, "TB": 10**12, "TIB": 2**40}
_SPEC = re.compile(r"^(?:(?P<cpu>cpu):)?(?:(?P<count>\d+)\s*[x*]\s*)?(?P<size>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)$", re.I)


class DeviceError(ValueError):
    """A devices string that does not parse, or a machine whose devices cannot be read."""


@dataclass(frozen=True)
class Devices:
    """`count` devices of one kind ("cuda" or "cpu"), each with `capacity` bytes; `source` says where the
    figures came from (the string given, or this machine)."""

    kind: str
    count: int
    capacity: int
    source: str

    def describe(self) -> str:
        each = f"{self.capacity / 1e9:.1f} GB ({self.capacity / 2**30:.1f} GiB)"
        if self.kind == "cpu":
            return f"CPU memory of {each}"
        return f"{self.count} GPUs of {each} each" if self.count > 1 else f"1 GPU of {each}"


def parse_devices(text: str) -> Devices:
    """`NxSIZE` GPUs (`8x80GB`, `1x80GB`, `2x24GiB`; a bare `80GB` is one) or `cpu:SIZE` (host memory)."""
    match = _SPEC.match(text.strip())
    unit = (match.group("unit") or "").upper() if match else ""
    if match is None or unit not in UNITS or (match.group("cpu") and match.group("count")):
        raise DeviceError(
            f"devices={text!r} is not a device list; write NxSIZE for GPUs (8x80GB, 1x80GB, 2x24GiB) or "
            "cpu:SIZE for host memory (cpu:24GB)"
        )
    count = int(match.group("count") or 1)
    capacity = int(float(match.group("size")) * UNITS[unit])
    if count < 1 or capacity <= 0:
        raise DeviceError(f"devices={text!r}: need at least one device of some memory")
    return Devices("cpu" if match.group("cpu") else "cuda", count, capacity, f"--devices {text}")


def local_devices(device: str = "auto") -> Devices:
    """This machine's: every visible CUDA device (their smallest total memory) for `device` cuda or auto
    with a GPU; otherwise the host's total memory."""
    import torch

    if device in ("auto", "cuda") and torch.cuda.is_available():
        count = torch.cuda.device_count()
        capacity = min(torch.cuda.get_device_properties(i).total_memory for i in range(count))
        return Devices("cuda", count, capacity, "this machine's GPUs")
    if device == "cuda":
        raise DeviceError("device='cuda' but no CUDA GPU is visible: state the devices to plan for, e.g. 8x80GB")
    return Devices("cpu", 1, host_memory(), "this machine's memory")


def host_memory() -> int:
    """Total host memory in bytes (`/proc/meminfo`, else sysconf)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

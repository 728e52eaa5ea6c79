"""Nothing leaves the machine: training with a local Ray cluster (`--ray-workers 1`), training in one process
with evaluation, and `spiral-eval games` and `reasoning` connect only to loopback addresses and look up no host name but
localhost.

Each run is a subprocess whose every Python process (the driver, and Ray's: GCS clients, the raylet's workers, the
agents, and the dashboard where one starts) loads `sitecustomize.py` from `NET_AUDIT` (through PYTHONPATH, which
Ray's processes inherit): an audit hook that logs each socket connect, sendto and name lookup, with the process's
command line. Where `strace` runs here, the run is also traced (connect, sendto, sendmsg), which sees Ray's C++
processes (gcs_server, raylet) too.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[3]

AUDIT_HOOK = r"""
import json, os, socket, sys

_LOG = os.environ.get("SPIRAL_NET_AUDIT_LOG")
_EVENTS = {"socket.connect", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname",
           "socket.gethostbyname_ex", "socket.gethostbyaddr", "socket.getnameinfo"}


def _write(record):
    line = (json.dumps(record, default=repr) + "\n").encode()
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _hook(event, args):
    if event not in _EVENTS:
        return
    try:
        if event in ("socket.connect", "socket.sendto"):
            sock, address = args[0], args[-1]
            record = {"event": event, "family": int(sock.family), "address": address}
        else:
            record = {"event": event, "host": args[0]}
        record["pid"] = os.getpid()
        _write(record)
    except Exception as error:  # the audit must never break the process it watches
        _write({"event": "audit-error", "error": repr(error), "pid": os.getpid()})


if _LOG:
    _write({"event": "start", "pid": os.getpid(), "argv": sys.argv})
    sys.addaudithook(_hook)
"""

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def is_loopback(host: object) -> bool:
    """Whether `host` (an address or a name) names this machine's loopback."""
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def is_numeric(host: object) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return True


def audit_problems(records: list[dict]) -> list[str]:
    """Each connect or sendto to an internet address that is not loopback, and each lookup of a host name that
    is not localhost (a numeric host is no lookup), as a line naming the process."""
    argv = {r["pid"]: " ".join(map(str, r["argv"]))[:160] for r in records if r["event"] == "start"}
    problems = []
    for r in records:
        who = argv.get(r.get("pid"), r.get("pid"))
        if r["event"] == "audit-error":
            problems.append(f"the audit failed in {who}: {r['error']}")
        elif r["event"] in ("socket.connect", "socket.sendto"):
            address = r["address"]
            internet = r["family"] in (2, 10) and isinstance(address, list)  # AF_INET, AF_INET6 (JSON: a list)
            if internet and not is_loopback(address[0]):
                problems.append(f"{r['event']} to {address} by {who}")
        elif r["event"] not in ("start",):
            host = r["host"]
            if host not in (None, "", b"") and not is_loopback(host) and not is_numeric(host):
                problems.append(f"{r['event']} of {host!r} by {who}")
            elif is_numeric(host) and not is_loopback(host) and not ipaddress.ip_address(str(host)).is_unspecified:
                problems.append(f"{r['event']} of the address {host!r} by {who}")
    return problems


ADDRESS = re.compile(r'inet_addr\("([0-9.]+)"\)|inet_pton\(AF_INET6, "([0-9a-fA-F:.]+)"')


def strace_problems(trace: str) -> list[str]:
    """Each connect, sendto or sendmsg in an `strace -f` log that names an internet address not loopback."""
    problems = []
    for line in trace.splitlines():
        for v4, v6 in ADDRESS.findall(line):
            if not is_loopback(v4 or v6):
                problems.append(line[:240])
    return problems


def strace_works() -> bool:
    if shutil.which("strace") is None:
        return False
    done = subprocess.run(["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect", "-o", os.devnull, "true"])
    return done.returncode == 0


def run_audited(args: list[str], tmp_path: Path, timeout: int = 600) -> tuple[list[dict], list[str]]:
    """Run `python -m ...args` with the audit hook in every Python process (and under strace where it runs);
    fail if it fails. Returns the audit records and the problems found."""
    hook_dir = tmp_path / "audit"
    hook_dir.mkdir(parents=True)
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
    log = tmp_path / "audit.jsonl"
    trace = tmp_path / "strace.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook_dir), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "SPIRAL_NET_AUDIT_LOG": str(log),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [sys.executable, *args]
    traced = strace_works()
    if traced:
        cmd = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace), *cmd]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    problems = audit_problems(records)
    if traced:
        problems += strace_problems(trace.read_text())
    return records, problems


def train_args(model: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        "-m", "spiral_train.cli",
        "--model", str(model),
        "--steps", "1",
        "--games-per-step", "4",
        "--num-envs", "2",
        "--eval-games", "0",
        "--no-progress",
        "--run-dir", str(run_dir),
        "--env-kwargs", '{"KuhnPoker-v1": {"num_rounds": 1}}',
        *extra,
    ]  # fmt: skip


def test_the_audit_sees_what_it_should_refuse(tmp_path):
    """The checks themselves: a lookup of a real name and a connect beyond loopback are both reported."""
    code = (
        "import socket\n"
        "for host in ('localhost', '127.0.0.1', 'example.invalid'):\n"
        "    try: socket.getaddrinfo(host, 80)\n"
        "    except OSError: pass\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.connect(('192.0.2.1', 53))\n"  # TEST-NET-1: a UDP connect sends nothing
    )
    records, problems = run_audited(["-c", code], tmp_path)
    assert any(r["event"] == "start" for r in records)
    assert len(problems) >= 2, problems
    assert any("example.invalid" in p for p in problems) and any("192.0.2.1" in p for p in problems), problems
    assert not any("localhost" in p or "'127.0.0.1'" in p for p in problems), problems


@pytest.mark.ray
@pytest.mark.learning
def test_a_ray_run_reaches_nothing_beyond_the_machine(quick_model, tmp_path):
    records, problems = run_audited(train_args(quick_model, tmp_path / "run", "--ray-workers", "1"), tmp_path)
    assert problems == []
    started = [" ".join(map(str, r["argv"])) for r in records if r["event"] == "start"]
    # the hook ran in Ray's own processes, so their silence means something
    assert any("default_worker.py" in argv for argv in started), started
    assert any("runtime_env/agent" in argv for argv in started), started
    assert not any("dashboard/dashboard.py" in argv for argv in started), started  # the API server
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1]


@pytest.mark.learning
def test_training_and_evaluation_without_ray_reach_nothing_beyond_the_machine(quick_model, tmp_path):
    run_dir = tmp_path / "run"
    extra = ("--eval-every", "1", "--eval-games", "2", "--eval-opponents", "random")
    _, problems = run_audited(train_args(quick_model, run_dir, *extra), tmp_path / "train")
    assert problems == []
    out = tmp_path / "games.json"
    games = ["-m", "spiral_train.eval.cli", "games", "--model", str(quick_model), "--env-ids", "KuhnPoker-v1"]
    games += ["--env-kwargs", '{"KuhnPoker-v1": {"num_rounds": 1}}', "--games", "2", "--out", str(out)]
    _, problems = run_audited(games, tmp_path / "eval")
    assert problems == []
    assert out.exists()
    out = tmp_path / "reasoning.jsonl"
    reasoning = ["-m", "spiral_train.eval.cli", "reasoning", "--model", str(quick_model), "--out", str(out)]
    reasoning += ["--benchmark", "gym:basic_arithmetic:2", "--samples", "1", "--max-new-tokens", "16"]
    _, problems = run_audited(reasoning, tmp_path / "reasoning")
    assert problems == []
    assert len(out.read_text().splitlines()) == 2


@pytest.mark.learning  # a whole evaluation on a vLLM engine: most of a minute
@pytest.mark.vllm
def test_evaluation_on_vllm_reaches_nothing_beyond_the_machine(spiral_cache, tmp_path):
    """vLLM in this process (on CPU; its usage report runs only from its GPU worker, which this cannot show)."""
    pytest.importorskip("vllm")
    from spiral_train.config import make_config
    from spiral_train.config.views import ModelSource
    from spiral_train.models.loading import tiny_spec
    from spiral_train.models.tiny import tiny_model_path

    model = tiny_model_path(
        tiny_spec(ModelSource.from_config(make_config("tiny-cpu", {"generator": "vllm"}))), log=lambda *_: None
    )
    out = tmp_path / "reasoning.jsonl"
    reasoning = ["-m", "spiral_train.eval.cli", "reasoning", "--model", str(model), "--out", str(out)]
    reasoning += ["--benchmark", "gym:basic_arithmetic:2", "--samples", "1", "--max-new-tokens", "16"]
    _, problems = run_audited([*reasoning, "--generator", "vllm"], tmp_path)
    assert problems == []
    assert len(out.read_text().splitlines()) == 2

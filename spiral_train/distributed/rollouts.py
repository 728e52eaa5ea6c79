"""Keeps the rollout workers busy, and turns their failures into games played again, never into lost steps.

The pool holds chunks of games waiting for a worker, chunks in flight, and finished games tagged with the
weight version that played them. `collect` returns exactly one batch:

- sync mode: every chunk of this step's games is played with the current weights, and only those results
  are used (a result of any other version, from a worker Ray restarted behind our back, is played again);
- async mode: workers keep playing queued games while the learner updates (the trainer queues one batch
  ahead), with the newest weights the driver has sent them; a finished game whose version is more than
  `max_staleness` updates behind the learner is dropped (counted) and played again with fresher weights,
  and the oldest games still fresh enough are used first. The learner's PPO ratio divides by the
  behaviour logprobs of the sampling weights, so the older samples it uses are importance-corrected.

A worker that fails in any way is replaced and its chunk played again. One that dies (RayActorError) is
restarted by Ray (`max_restarts`); one whose call raised (a task error: a CUDA out-of-memory, say, which may
leave the process broken) is killed with `ray.kill(no_restart=False)`, so Ray restarts it the same way,
within the same `ray_max_restarts`. Either way the chunk goes back to the front of the queue, other workers
may take it, and the failed one gets no new chunk until a probe (its `pid`, retried with backoff: Ray
answers "unavailable" while the actor restarts) shows it is back; then it is sent the current weights before
its next chunk. Chunks keep their games and their sampling seed, so a game played again samples exactly what
it would have. Only `ActorDiedError` (Ray gave up restarting it) counts towards giving a worker up. A chunk
that fails `CHUNK_ATTEMPTS` times (a bug in a game or the model code fails the same way every time) ends the
run with the worker's first error, traceback included.

Opponent pools: a chunk's pool games all play one snapshot (chunks are cut where the snapshot changes), and
the chunk travels with (that snapshot's step, the object reference of its weights), which the worker fetches
only if it holds another snapshot; so a replayed chunk, or one queued a step ahead, plays its own snapshot.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from spiral_train.config.views import RaySettings, WorkerSettings
from spiral_train.distributed.messages import RunStopped, describe_resources, error_text
from spiral_train.distributed.worker import RolloutWorker, sample_seed
from spiral_train.rollout.records import GameResult, Match

Chunk = list[tuple[int, Match]]
"""Games that travel together: (order key, match) pairs; the key keeps a batch in the order it was drawn."""


def chunk_key(chunk: Chunk) -> tuple[int, ...]:
    """A chunk's identity across its replays: its games' order keys."""
    return tuple(key for key, _ in chunk)


START_TIMEOUT_S = 600.0
"""How long `RolloutPool` waits for its workers to start (placed, and their model loaded)."""

CHUNK_ATTEMPTS = 3
"""Times a chunk may fail (on restarted workers, with the same weights and seed) before the run ends."""


class ChunkFailedError(RunStopped):
    """A chunk of games failed `CHUNK_ATTEMPTS` times; the message holds the worker's first error."""


class WorkersLostError(RunStopped):
    """Every rollout worker died more times than Ray restarts it; the message holds the last failure."""


@dataclass
class PoolStats:
    """Counts since the last `take_stats`, for the step's metrics."""

    dropped_stale: int = 0
    failures: int = 0
    restarts: int = 0
    replayed: int = 0


class RolloutPool:
    def __init__(
        self,
        config: RaySettings,
        worker: WorkerSettings,
        pool_weights: Callable[[int], Any] | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        """Start `ray_workers` workers, each sent `worker` (plain data), and wait for each (at most
        `start_timeout_s`: Ray waits forever for an actor no node has room for)."""
        import ray

        self.config = config
        self.pool_weights = pool_weights
        """Snapshot step -> the object reference of its weights, for chunks with pool games."""
        restarts = config.ray_max_restarts
        actor = ray.remote(RolloutWorker).options(
            num_cpus=config.ray_worker_cpus,
            num_gpus=config.ray_worker_gpus,
            resources=dict(config.ray_worker_resources) or None,
            max_restarts=restarts,
            max_task_retries=0,  # the pool replays a failed chunk itself, with fresh weights
        )
        threads = max(1, round(config.ray_worker_cpus))
        self.workers = [actor.remote(worker, threads) for _ in range(config.ray_workers)]
        self.pids: list[int | None] = self._started(start_timeout_s)
        self.versions = [-1] * len(self.workers)
        self.dead = [False] * len(self.workers)
        self.died_in_a_row = [0] * len(self.workers)
        self.max_died_in_a_row = (restarts if restarts >= 0 else 100) + 1
        self.recovering: dict[int, tuple[float, int]] = {}
        """Workers that failed: when to probe them next, and how many probes failed so far."""
        self.chunk_size = config.ray_chunk_games or math.ceil(config.games_per_step / config.ray_workers)
        self.pending: deque[Chunk] = deque()
        self.in_flight: dict[Any, tuple[int, Chunk | None, int]] = {}
        self.finished: list[GameResult] = []
        """Results not yet handed out; a result's `index` is its order key while here."""
        self.next_key = 0
        self.stats = PoolStats()
        self.chunk_errors: dict[tuple[int, ...], list[str]] = {}
        """Per chunk (`chunk_key`) still failing: the error text of each failure."""
        self.last_error: str | None = None
        self.replacing: set[int] = set()
        """Workers killed after a task error: back only once a probe answers from a new process."""

    def _started(self, timeout_s: float) -> list[int | None]:
        """The workers' process ids, once all have started; else kill them and say what did not fit."""
        import ray

        refs = [w.pid.remote() for w in self.workers]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        if len(ready) < len(refs):
            for worker in self.workers:
                ray.kill(worker, no_restart=True)
            c = self.config
            asked = describe_resources({"CPU": c.ray_worker_cpus, "GPU": c.ray_worker_gpus})
            asked += f" and {c.ray_worker_resources}" if c.ray_worker_resources else ""
            free = describe_resources(ray.available_resources())
            raise RuntimeError(
                f"{len(refs) - len(ready)} of {len(refs)} rollout workers did not start within {timeout_s:g} s: each "
                f"asks for {asked} on one node, and the Ray cluster has {free} free now (the learner ranks' placement "
                "group may hold part of a node meant for rollouts): lower ray_workers or ray_worker_cpus/gpus, or "
                "add nodes"
            )
        return ray.get(refs)

    # -- the step's batch ---------------------------------------------------------------------------------

    def collect(self, matches: Sequence[Match], version: int, weights: Any, batch: int) -> list[GameResult]:
        """Queue `matches`, and return `batch` finished games fit for training at `version`, each with the
        `version` that played it and, as `index`, its place in the order the games were queued."""
        self.enqueue(matches)
        oldest = version - (self.config.max_staleness if self.config.async_mode else 0)
        while True:
            self._drop_older_than(oldest)
            if len(self.finished) >= batch:
                break
            self._dispatch(version, weights)
            if not self.in_flight and not self.recovering:
                raise RuntimeError(
                    f"no games left to play for a batch of {batch} (have {len(self.finished)}): this is a bug"
                )
            self._wait_one()
        self.finished.sort(key=lambda f: (f.version, f.index))
        taken, self.finished = self.finished[:batch], self.finished[batch:]
        if self.config.async_mode:
            self._dispatch(version, weights)  # keep playing while the learner updates
        return taken if self.config.async_mode else sorted(taken, key=lambda f: f.index)

    def enqueue(self, matches: Sequence[Match]) -> None:
        keyed = []
        for match in matches:
            keyed.append((self.next_key, match))
            self.next_key += 1
        self.pending.extend(self._chunks(keyed))

    def _chunks(self, keyed: Sequence[tuple[int, Match]]) -> list[Chunk]:
        """Cut games into chunks of `chunk_size`, and also where the pool snapshot changes (a worker holds one)."""
        chunks: list[Chunk] = []
        snapshot: int | None = None
        for key, match in keyed:
            step = match.pool_step
            if not chunks or len(chunks[-1]) == self.chunk_size or (step is not None and snapshot not in (None, step)):
                chunks.append([])
                snapshot = None
            chunks[-1].append((key, match))
            snapshot = step if step is not None else snapshot
        return chunks

    def outstanding(self) -> Iterator[Match]:
        """Every game queued, in flight or finished but not yet used (whose pool weights must stay available)."""
        for chunk in [*self.pending, *(c for _, c, _ in self.in_flight.values() if c is not None)]:
            yield from (match for _, match in chunk)
        yield from (f.match for f in self.finished)

    def ready_workers(self, version: int, weights: Any) -> list[int]:
        """The live workers (not dead, not recovering), each sent `version`'s weights first where it lacks them
        (an actor runs its calls in order, so whatever is called next on it plays those weights)."""
        ready = []
        for w, worker in enumerate(self.workers):
            if self.dead[w] or w in self.recovering:
                continue
            if self.versions[w] != version:
                worker.set_weights.remote(version, weights)
                self.versions[w] = version
            ready.append(w)
        return ready

    def mark_failed(self, w: int, err: BaseException) -> None:
        """A call outside the pool's own chunks failed on worker `w` with `err` (a Ray error): replace the worker
        if it raised, and probe it until Ray has it back."""
        self._call_failed(w, None, err)

    def take_stats(self) -> PoolStats:
        stats, self.stats = self.stats, PoolStats()
        return stats

    # -- workers --------------------------------------------------------------------------------------------

    def _dispatch(self, version: int, weights: Any) -> None:
        """Give every idle live worker a chunk, sending it the current weights first if it lacks them."""
        busy = {w for w, _, _ in self.in_flight.values()}
        for w, worker in enumerate(self.workers):
            if w in self.recovering and w not in busy and time.monotonic() >= self.recovering[w][0]:
                self.in_flight[worker.pid.remote()] = (w, None, -1)  # a probe: is it back?
                continue
            if not self.pending:
                continue
            if w in busy or self.dead[w] or w in self.recovering:
                continue
            chunk = self.pending.popleft()
            if self.versions[w] != version:
                worker.set_weights.remote(version, weights)  # runs before the play below (actor order)
                self.versions[w] = version
            matches = [m for _, m in chunk]
            seed = sample_seed(self.config.seed, matches)
            pool = None
            steps = {m.pool_step for m in matches if m.pool_step is not None}
            if steps:
                assert len(steps) == 1 and self.pool_weights is not None, steps  # `_chunks` cuts at snapshot changes
                step = steps.pop()
                pool = (step, self.pool_weights(step))
            ref = worker.play.remote(matches, seed, self.config.log_transcripts > 0, pool)
            self.in_flight[ref] = (w, chunk, version)

    def _wait_one(self) -> None:
        import ray
        from ray.exceptions import RayError

        timeout = None
        if self.recovering:
            timeout = max(0.0, min(at for at, _ in self.recovering.values()) - time.monotonic())
        if not self.in_flight:
            time.sleep(timeout or 0.0)
            return
        done, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=timeout)
        if not done:
            return  # time to probe a recovering worker
        ref = done[0]
        w, chunk, expected = self.in_flight.pop(ref)
        try:
            answer = ray.get(ref)
        except RayError as err:
            self._call_failed(w, chunk, err)
            return
        self.died_in_a_row[w] = 0
        if chunk is None and w in self.replacing and answer == self.pids[w]:
            self._probe_later(w, failed_probe=True)  # the killed process answered: not replaced yet
            return
        if chunk is None:  # a probe answered: the worker is back, without our weights
            self.replacing.discard(w)
            self.recovering.pop(w, None)
            self.versions[w] = -1
            self._note_pid(w, answer)
            return
        played_version, pid, results = answer
        self._note_pid(w, pid)
        if played_version != expected:  # restarted between calls: it lost the weights we had sent
            self.versions[w] = -1
            self.pending.appendleft(chunk)
            self.stats.replayed += len(chunk)
            return
        self.chunk_errors.pop(chunk_key(chunk), None)
        for (key, _), result in zip(chunk, results):
            result.index = key
            self.finished.append(result)

    def _note_pid(self, w: int, pid: int) -> None:
        if pid != self.pids[w]:
            self.stats.restarts += 1
            self.pids[w] = pid

    def _call_failed(self, w: int, chunk: Chunk | None, err: BaseException) -> None:
        """Worker `w`'s call (playing `chunk`, or None) failed with Ray error `err`: one that raised (a task
        error) may be left broken (a CUDA error is sticky), so it is killed for Ray to restart; then `_failed`."""
        import ray
        from ray.exceptions import ActorDiedError, RayActorError

        if not isinstance(err, RayActorError):
            ray.kill(self.workers[w], no_restart=False)
            self.replacing.add(w)
        self._failed(w, chunk, err, died=isinstance(err, ActorDiedError))

    def _failed(self, w: int, chunk: Chunk | None, err: BaseException, died: bool) -> None:
        """A call failed: replay its chunk elsewhere, and probe the worker until Ray has it back. A chunk whose
        code raised `CHUNK_ATTEMPTS` times ends the run; a worker process lost (killed, out of memory, crashed)
        does not count against its chunk, only against the worker's restarts."""
        from ray.exceptions import RayActorError

        if chunk is not None or self.last_error is None:
            self.last_error = error_text(err)
        if chunk is not None:
            self.stats.failures += 1
            if not isinstance(err, RayActorError):  # the chunk's code raised; a lost process is bounded by restarts
                errors = self.chunk_errors.setdefault(chunk_key(chunk), [])
                errors.append(error_text(err))
                if len(errors) >= CHUNK_ATTEMPTS:
                    raise ChunkFailedError(self._chunk_report(chunk, errors))
            self.stats.replayed += len(chunk)
            self.pending.appendleft(chunk)
        self.versions[w] = -1  # a restarted worker starts without our weights
        self.died_in_a_row[w] += died
        if self.died_in_a_row[w] >= self.max_died_in_a_row:
            self.dead[w] = True
            self.recovering.pop(w, None)
        else:
            self._probe_later(w, failed_probe=chunk is None)
        if all(self.dead):
            raise WorkersLostError(
                f"all {len(self.workers)} rollout workers died for good (Ray restarted each up to "
                f"ray_max_restarts={self.config.ray_max_restarts} times); the last failure was:\n{self.last_error}"
            )

    def _probe_later(self, w: int, failed_probe: bool) -> None:
        """Probe worker `w` again after a backoff that doubles with each failed probe (at most 2 s)."""
        probes = self.recovering.get(w, (0.0, 0))[1] + failed_probe
        self.recovering[w] = (time.monotonic() + min(2.0, 0.1 * 2**probes), probes)

    def _chunk_report(self, chunk: Chunk, errors: list[str]) -> str:
        games = sorted({m.env_id for _, m in chunk})
        seeds = [m.seed for _, m in chunk]
        return (
            f"a chunk of {len(chunk)} games ({', '.join(games)}; game seeds {seeds}) failed {len(errors)} times on "
            "rollout workers: each failed worker was replaced (Ray restarted it) and the chunk played again with "
            "its same sampling seed, and it failed again, so this is no passing fault: a bug (in a game, the model "
            "code or the generator), or a chunk that does not fit the device every time (an out-of-memory: lower "
            f"num_envs or generation_batch_size); the run stops. The worker's first error:\n{errors[0]}"
        )

    def _drop_older_than(self, oldest: int) -> None:
        stale = [f for f in self.finished if f.version < oldest]
        if not stale:
            return
        self.finished = [f for f in self.finished if f.version >= oldest]
        self.stats.dropped_stale += len(stale)
        self.stats.replayed += len(stale)
        replay = sorted(((f.index, f.match) for f in stale), key=lambda km: km[0])
        self.pending.extendleft(reversed(self._chunks(replay)))

    def shutdown(self, close_timeout_s: float = 30.0) -> None:
        """Kill the workers, letting each idle one first close its vLLM engine (and remove any weights folder it
        wrote). A busy, dead or recovering worker (or one slower than `close_timeout_s`) is killed all the same:
        its engine runs inside its process, so the kill frees it too."""
        import ray

        busy = {w for w, _, _ in self.in_flight.values()} | set(self.recovering)
        idle = [w for i, w in enumerate(self.workers) if i not in busy and not self.dead[i]]
        closing = [w.close.remote() for w in idle] if self.config.generator == "vllm" else []
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=close_timeout_s)
        for worker in self.workers:
            ray.kill(worker, no_restart=True)
        self.workers = []

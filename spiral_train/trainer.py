"""The self-play loop, top to bottom: plan games, play them, estimate advantages with RAE, update, evaluate, save.

One policy plays both seats of every game (or one seat against a fixed opponent). Generation samples from
the learner's own weights, so every batch is on-policy. Where games are played and who updates the weights
are the trainer's two parts (`rollout/sources.py`), chosen once in `Trainer._build_parts`: in this process, or on Ray
actors (`ray_workers` > 0), with this same loop in sync and async modes.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers.utils import logging as hf_logging

from spiral_envs.core import PLAYER_NAMES
from spiral_train.checkpoint import (
    STATE_FILE,
    DamagedCheckpoint,
    resume_point,
    save_checkpoint,
    truncate_jsonl,
    write_atomic,
)
from spiral_train.config import TrainConfig, to_dict, views
from spiral_train.eval.games import eval_cost, evaluate
from spiral_train.learner import Learner
from spiral_train.metrics import MetricsLog, baseline_key, last_time_s
from spiral_train.models import loading, lora
from spiral_train.models.tiny import tiny_model_path
from spiral_train.policy_average import WeightAverage
from spiral_train.progress import progress_bar, progress_postfix
from spiral_train.rae import RAE, assign_advantages
from spiral_train.reasoning.benchmarks import ReasoningProbe
from spiral_train.rollout import policy
from spiral_train.rollout.collector import Collector, scripted
from spiral_train.rollout.generation import Generator, make_generator
from spiral_train.rollout.opponent_pool import OpponentPool
from spiral_train.rollout.records import FROZEN, LEARNER, POOL, RANDOM, STRONG, GameResult, Match, Turn, other_role
from spiral_train.rollout.sources import LocalRollouts, RolloutSource, UpdatesWeights
from spiral_train.run_folder import CONFIG_FILE, RunFolderLock


class Trainer:
    """The self-play loop, built from a rollout source and a learner (`parts`), chosen in `_build_parts`."""

    def __init__(self, config: TrainConfig, run_dir: Path, resume: bool = False, log=print) -> None:
        hf_logging.disable_progress_bar()  # one bar per checkpoint write would bury our own
        self.config = config
        self.run_dir = run_dir
        self.log = log
        # on Ray the driver holds its copy of the weights on the CPU: learner ranks and workers have the devices
        self.device = torch.device("cpu") if config.ray_workers > 0 else loading.resolve_device(config.device)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = RunFolderLock.acquire(run_dir)
        """This run's hold on `run_dir` (a second run there is refused); `close` releases it."""
        try:
            self._start(resume)
        except BaseException:
            self._lock.release(forget_empty_folder=True)
            raise

    def _start(self, resume: bool) -> None:
        """Everything `__init__` does once the run folder is locked."""
        config, run_dir, log = self.config, self.run_dir, self.log
        torch.manual_seed(config.seed)
        self.model_source = views.ModelSource.from_config(config)
        found = resume_point(run_dir, lambda folder: self._load(folder), log) if resume else None
        checkpoint, state = (found[0], found[1]) if found is not None else (None, None)
        if resume and checkpoint is None:  # a crash before the first checkpoint: its logged steps are played again
            truncate_jsonl(run_dir / "metrics.jsonl", -1)
            truncate_jsonl(run_dir / "transcripts.jsonl", -1)
            log(f"no checkpoint in {run_dir} yet: starting from step 0 (metrics.jsonl and transcripts.jsonl emptied)")
        self.sampling = views.Sampling.from_config(config)
        self.generation = views.GenerationSettings.from_config(config)
        """The settings the parts take (`config.views`), built here from the config."""
        if found is not None:
            self.model, self.tokenizer, _ = found[2]
        else:
            self.model, self.tokenizer, source = loading.load_model(self.model_source, self.device, log)
            write_atomic(run_dir / CONFIG_FILE, yaml.safe_dump({**to_dict(config), "model_source": source}))
        self.step = int(state["step"]) if state is not None else 0
        self.rae = RAE(config.rae, config.rae_decay)
        self.source = config.model or str(tiny_model_path(loading.tiny_spec(self.model_source), log=log))
        """The run's starting model (not a checkpoint's): the KL anchor, and what Ray actors load first."""
        self.rng = random.Random(config.seed)
        self.torch_rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.pool = OpponentPool.from_settings(views.PoolSettings.from_config(config), run_dir)
        self.collector = Collector(config.num_envs, config.game_kwargs())
        self.generator: Generator
        self.learner: UpdatesWeights
        self.rollouts: RolloutSource
        self.reasoning = ReasoningProbe.from_config(config) if config.eval_reasoning else None
        """The reasoning benchmarks of `eval_reasoning`, loaded now so a missing file fails at start."""
        self._close_parts: Callable[[], None]
        """Stops what the parts hold (Ray actors)."""
        self._build_parts()
        decay = views.policy_average_decay(config.policy_average, config.policy_average_decay, config.ray_workers)
        self.average = WeightAverage(self.model, decay) if decay is not None else None
        """The policy the run evaluates and ships (`policy_average`), or None: the last iterate."""
        self.moving_anchor = views.anchors_to_average(config.kl_anchor, decay is not None, config.lora_rank)
        """Whether the KL reference follows the average (`kl_anchor`): copied into it after each update."""
        if self.average is not None:
            anchor = "; the KL term anchors to it" if self.moving_anchor and config.kl_coef > 0 else ""
            log(f"evaluation and each checkpoint's model/ hold the EMA of the weights (decay {self.average.decay})"
                f"{anchor}; last_iterate/ holds the trained weights, last_iterate/... metrics their play")  # fmt: skip
        self._queued_ahead = False
        if state is not None:
            try:
                self._restore(state)
            except BaseException as err:
                self._close_parts()
                if isinstance(err, (KeyError, TypeError, ValueError, RuntimeError, IndexError)):
                    raise DamagedCheckpoint(f"{checkpoint / STATE_FILE} does not restore: {err!r}"[:300]) from None
                raise
            truncate_jsonl(run_dir / "metrics.jsonl", self.step)
            truncate_jsonl(run_dir / "transcripts.jsonl", self.step)
            log(f"resumed {run_dir} at step {self.step}")
        self.policy = policy.model_policy(self.generator, self.tokenizer, self.sampling, self.torch_rng)
        self.opponent = views.opponent_kind(config.opponent)
        """The seat kind of the fixed opponent ("random", "strong", "frozen"), or None in self-play."""
        self.players: dict[str, Any] = {LEARNER: self.policy}
        """Seat kind -> who plays it in this process (the pool's seat joins at its first draw)."""
        if self.opponent is not None and not (self.opponent == FROZEN and config.ray_workers > 0):
            self.players[self.opponent] = self._opponent_player()  # on Ray, workers load a checkpoint opponent
        self.metrics = MetricsLog(run_dir, to_dict(config), config.tensorboard, config.wandb, config.wandb_project)
        self.started = time.time() - (last_time_s(run_dir) if resume else 0.0)
        if config.eval_every == 0:
            self.log("evaluation off (eval_every 0): metrics.jsonl holds training records only")
        elif config.eval_games > 0:
            self._log_eval_cost()

    def _load(self, folder: Path) -> tuple[Any, Any, str]:
        """A checkpoint's model and tokenizer (`folder` is its `model` folder), as `loading.load_model` gives them."""
        return loading.load_model(dataclasses.replace(self.model_source, model=str(folder)), self.device, self.log)

    def _log_eval_cost(self) -> None:
        """Say at start what each evaluation will sample, and where."""
        c = self.config
        where = "on the rollout workers' engines" if c.ray_workers > 0 else "in this process"
        env_ids = c.eval_env_ids or c.env_ids
        cost = eval_cost(
            env_ids, c.game_kwargs(), c.eval_opponents, c.eval_games, c.eval_probe_samples, c.eval_probe_positions,
            c.max_new_tokens,
        )  # fmt: skip
        self.log(f"evaluation at step 0, every {c.eval_every} steps and at the end, {where}: {cost}")

    def _build_parts(self) -> None:
        """The one place that chooses the parts: in this process, or on Ray when `ray_workers` > 0.

        On Ray the driver's generator (evaluation, reasoning benchmarks) sends every call to the rollout
        workers' engines: the driver holds no model on a device, nothing outside what Ray accounts for.
        """
        c = self.config
        if c.ray_workers > 0:
            from spiral_train.distributed.driver import start_ray

            layout, worker = views.RaySettings.from_config(c), views.WorkerSettings.from_config(c, self.source)
            rank = views.LearnerRankSettings.from_config(c, self.source)
            self.learner, self.rollouts, self._close_parts = start_ray(
                layout, worker, rank, self.model, self.step, self.run_dir
            )
            self.generator = self.rollouts.generator()  # type: ignore[attr-defined]
            return
        self.generator = make_generator(self.generation, self.model, self.tokenizer)
        settings = views.LearnerSettings.from_config(c)
        ref_model = loading.reference_model(settings, self.model, self.source, self.device)
        self.learner = Learner(self.model, settings, self.device, self.tokenizer.pad_token_id, ref_model)
        self.rollouts = LocalRollouts(self.collector, keep_transcripts=c.log_transcripts > 0)
        self._close_parts = self.rollouts.close

    # -- one step -------------------------------------------------------------------------------------

    def matches(self) -> list[Match]:
        """This step's games: env ids drawn by weight, fresh seeds, seat kinds by the opponent setting."""
        c = self.config
        matches = []
        pool_policy, pool_roles = (
            self.pool.plan(self.step, self.model, self.policy, c.games_per_step) if self.pool else (None, {})
        )
        if pool_policy is not None:
            self.players[POOL] = pool_policy
        for i in range(c.games_per_step):
            env_id = self.rng.choices(c.env_ids, weights=c.env_weights)[0] if len(c.env_ids) > 1 else c.env_ids[0]
            seed = self.rng.randrange(2**31)
            if i in pool_roles:
                seats = {pool_roles[i]: LEARNER, other_role(pool_roles[i]): POOL}
                matches.append(Match(env_id, seed, seats, pool_step=self.pool.drawn))  # type: ignore[union-attr]
                continue
            if self.opponent is None:
                seats = dict.fromkeys(PLAYER_NAMES, LEARNER)
            else:
                learner_role = PLAYER_NAMES[(self.step + i) % 2]
                seats = {learner_role: LEARNER, other_role(learner_role): self.opponent}
            matches.append(Match(env_id, seed, seats))
        return matches

    def train_step(self) -> dict[str, Any]:
        c = self.config
        t0 = time.perf_counter()
        self.rollouts.submit(self.matches(), self.players)
        if c.async_mode and not self._queued_ahead:  # one batch ahead: workers play while the learner updates
            self.rollouts.submit(self.matches(), self.players)
            self._queued_ahead = True
        results, rollout_record = self.rollouts.collect()
        t_collect = time.perf_counter() - t0
        turns = assign_advantages(results, self.rae, self.config.state_baseline)
        trained = [t for t in turns if t.advantage != 0.0] if c.drop_zero_advantage else turns
        t1 = time.perf_counter()
        self.generator.sleep()  # frees a vLLM engine's GPU memory for the update; sync_weights() wakes it
        t2 = time.perf_counter()
        update = self.learner.update(trained)
        if self.average is not None:
            self.average.update(self.model)
            self._anchor_to_average()
        t3 = time.perf_counter()
        self.generator.sync_weights()
        self.step += 1
        record = {"step": self.step, **self.rollout_stats(results, turns), **update}
        record["train/samples"] = len(trained)
        record["time/collect_s"] = t_collect
        record["time/update_s"] = t3 - t2
        record["time/sync_s"] = (t2 - t1) + (time.perf_counter() - t3)  # the generator's sleep and weight sync
        record["time/step_s"] = time.perf_counter() - t0
        record.update(rollout_record)
        if self.device.type == "cuda":
            record["gpu/peak_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        for key, value in sorted(self.rae.baselines.items()):
            record[baseline_key(key)] = value
        if self.pool is not None:
            record.update(self.pool.stats(results))
        if c.log_transcripts:
            self.metrics.log_transcripts(self.step, [_transcript(r) for r in results[: c.log_transcripts]])
        return record

    def rollout_stats(self, results: list[GameResult], turns: list[Turn]) -> dict[str, float]:
        scores = [(role, r.score(role)) for r in results for role in r.match.learner_roles()]
        rewards = [score.value for _, score in scores]
        n_turns = max(1, len(turns))
        stats = {
            "train/reward_mean": sum(rewards) / max(1, len(rewards)),
            "train/invalid_rate": sum(not t.valid for t in turns) / n_turns,
            "train/truncated_rate": sum(t.truncated for t in turns) / n_turns,
            "train/response_len": sum(len(t.response_ids) for t in turns) / n_turns,
            "train/prompt_len": sum(len(t.prompt_ids) for t in turns) / n_turns,
            "train/turns_per_game": len(turns) / max(1, len(results)),
            "train/games": len(results),
        }
        for role in PLAYER_NAMES:
            wins = [score.win for x, score in scores if x == role]
            if wins:
                stats[f"train/win_rate/{role}"] = sum(wins) / len(wins)
        return stats

    def evaluate(self) -> dict[str, float]:
        """The shipped policy's evaluation; with a policy average, also the last iterate's strategy metrics, as
        `last_iterate/<env>/...` beside the average's `eval/<env>/...`."""
        if self.average is None:
            return self._evaluate(self.config.eval_opponents)
        last = {f"last_iterate/{k.removeprefix('eval/')}": v for k, v in self._evaluate((), reasoning=False).items()}
        with self.average.applied(self.model):
            self.generator.sync_weights()
            record = self._evaluate(self.config.eval_opponents)
        self.generator.sync_weights()
        return {**record, **last}

    def _evaluate(self, opponents: Sequence[str], reasoning: bool = True) -> dict[str, float]:
        """Evaluation of the weights the model holds now: games against `opponents`, the games' strategy probes
        and, where `reasoning`, the reasoning benchmarks."""
        c = self.config
        record: dict[str, float] = {}
        if c.eval_games > 0:
            record = evaluate(
                dataclasses.replace(self.policy, top_k=c.eval_top_k, top_p=c.eval_top_p),
                c.eval_env_ids or c.env_ids,
                opponents,
                c.eval_games,
                c.eval_temperature,
                self.collector,
                seed=c.seed,
                probe_samples=c.eval_probe_samples,
                probe_positions=c.eval_probe_positions,
                progress=c.progress,
            )
        if self.reasoning is not None and reasoning:
            record.update(self.reasoning.measure(self.generator, self.tokenizer))
        return record

    def close(self) -> None:
        """Stop what the run holds (Ray actors, the reasoning grader); `run` calls it however the loop ends."""
        try:
            if self.reasoning is not None:
                self.reasoning.close()
            self._close_parts()
        finally:
            self._lock.release()

    # -- the loop -------------------------------------------------------------------------------------

    def run(self) -> Path:
        c = self.config
        bar = progress_bar(c.steps, self.step, c.progress)
        try:
            if self.step == 0 and c.eval_every > 0:
                first = {"step": 0, "time_s": 0.0, **self.evaluate()}
                self.metrics.log(first)
                bar.set_postfix_str(progress_postfix(first))
            while self.step < c.steps:
                record = self.train_step()
                evaluated = c.eval_every > 0 and (self.step % c.eval_every == 0 or self.step == c.steps)
                if evaluated:
                    record.update(self.evaluate())
                record["time_s"] = time.time() - self.started
                self.metrics.log(record)
                if self.step % c.save_every == 0 or self.step == c.steps or (evaluated and c.keep_evaluated):
                    self.save(evaluated)
                bar.update(1)
                bar.set_postfix_str(progress_postfix(record))
        finally:
            bar.close()
            self.metrics.close()
            self.close()
        return self.run_dir

    def save(self, evaluated: bool = False) -> Path:
        """A checkpoint of this step; `evaluated`: taken at an evaluation, so its policy outlives pruning."""
        state = {
            "learner": self.learner.state_dict(),
            "rae": self.rae.state_dict(),
            "rng": self.rng.getstate(),
            "torch_rng": self.torch_rng.get_state(),
            "torch_global_rng": torch.get_rng_state(),
            "config": to_dict(self.config),
            "pool": self.pool.state_dict() if self.pool is not None else None,
            "model_base": lora.adapter_base(self.model),  # LoRA: the checkpoint holds only the adapter
            "policy_average": self.average.state_dict() if self.average is not None else None,
        }
        shipped = functools.partial(self.average.applied, self.model) if self.average is not None else None
        c = self.config
        path = save_checkpoint(
            self.run_dir, self.step, self.model, self.tokenizer, state, c.keep_checkpoints, shipped, evaluated,
            c.keep_evaluated,
        )  # fmt: skip
        if self.pool is not None:
            self.pool.prune()  # only now that the newest checkpoint no longer names a dropped snapshot
        return path

    def _restore(self, state: dict[str, Any]) -> None:
        self.learner.load_state_dict(state["learner"])
        self.rae.load_state_dict(state["rae"])
        if self.average is not None:
            if state.get("policy_average") is not None:
                self.average.load_state_dict(state["policy_average"])
            else:
                self.log("the checkpoint holds no policy average: it starts again from the resumed weights")
            self._anchor_to_average()
        if self.pool is not None:
            self.pool.load_state_dict(state.get("pool"))
        self.rng.setstate(state["rng"])
        self.torch_rng.set_state(state["torch_rng"])
        torch.set_rng_state(state["torch_global_rng"])

    def _anchor_to_average(self) -> None:
        """With a moving KL anchor (`kl_anchor`), the learner's reference model takes the average's weights."""
        if self.average is not None and self.moving_anchor and self.learner.ref_model is not None:  # type: ignore[attr-defined]
            self.average.copy_to(self.learner.ref_model)  # type: ignore[attr-defined]

    def _opponent_player(self) -> Any:
        """Who plays the fixed opponent's seats: the game's reference agent, or a frozen checkpoint."""
        if self.opponent in (RANDOM, STRONG):
            return scripted(self.opponent)
        return policy.frozen_checkpoint_policy(
            self.config.opponent, self.device, self.torch_rng, self.sampling, self.generation
        )


def _transcript(result: GameResult) -> dict[str, Any]:
    return {
        "env_id": result.match.env_id,
        "seed": result.match.seed,
        "returns": result.returns,
        "outcome": dataclasses.asdict(result.outcome) if result.outcome is not None else None,
        "turns": result.transcript,
    }

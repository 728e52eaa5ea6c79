"""The same self-play loop on Ray: rollout workers and a learner group as actors, driven by `RayTrainer`.

`RayTrainer` is the `Trainer` (same step: matches -> collect -> RAE -> learner.update -> evaluate -> save)
with two parts swapped: `collect` plays the games on `RolloutWorker` actors (`RolloutPool`), and
`self.learner` is a `LearnerGroup` of data-parallel ranks that looks like a `Learner` to the loop. Needs the
`ray` extra; `spiral_train.cli.trainer_class` picks it when `ray_workers > 0`.
"""

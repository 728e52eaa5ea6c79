"""The same self-play loop on Ray: rollout workers and a learner group as actors (needs the `ray` extra).

`Trainer._build_parts` takes these parts when `ray_workers` > 0: `driver.start_ray` returns a
`learner_group.LearnerGroup` (data-parallel ranks that act as one `Learner`) and a `driver.RayRollouts`
(games played on `worker.RolloutWorker` actors, kept busy by `rollouts.RolloutPool`). Nothing here imports
the trainer.
"""

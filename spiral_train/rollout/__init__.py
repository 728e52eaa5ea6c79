"""Playing games for training: the records (`Match`, `Turn`, `GameResult`), the rollout sources, the collector,
the model seat (`ModelPolicy`), the opponent pool and generation."""

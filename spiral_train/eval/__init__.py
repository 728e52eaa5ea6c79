"""Evaluation on games: games against fixed opponents, strategy metrics, populations, `spiral-eval`."""

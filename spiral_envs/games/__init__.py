"""The built-in games. Each module holds one game: its rules (`GameState`), its text layer (`TextGame`), its expert;
`spiral_envs/__init__.py` registers each game class, which `make` wraps in a `TextGameEnv`."""

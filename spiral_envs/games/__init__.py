"""The built-in games. Each module holds one game: its rules, its text layer, its env class, its expert."""

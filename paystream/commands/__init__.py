"""One module per `paystream` command; each reads settings via `Settings.from_env()`."""

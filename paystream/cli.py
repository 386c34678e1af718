"""`paystream …`: one entry point, one module per command under `paystream/commands/`.

Commands load lazily, so `paystream broker` never pays for importing Faust.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

COMMANDS: dict[str, tuple[str, str]] = {
    "broker": ("paystream.commands.broker", "broker"),
    "ingress": ("paystream.commands.ingress", "ingress"),
    "worker": ("paystream.commands.worker", "worker"),
    "sink": ("paystream.commands.sink", "sink"),
    "dev": ("paystream.commands.dev", "dev"),
    "send": ("paystream.commands.send", "send"),
    "dlq": ("paystream.commands.dlq", "dlq"),
    "ledger": ("paystream.commands.ledger", "ledger"),
    "topics": ("paystream.commands.topics", "topics"),
    "sign": ("paystream.commands.sign", "sign"),
    "state": ("paystream.commands.state", "state"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # command not built yet
            raise
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="paystream")
def main() -> None:
    """paystream: payment webhooks into trustworthy Kafka streams and SQL tables."""

"""`w2p-eval prepare`: build a dataset folder (videos, the WAV2PIX release, a generic folder, demo, voxceleb).

Each mode is its own module (``data/prepare_<mode>.py``: the work, its click sub-command ``command`` and its
declaration ``REGISTER_PREPARE_MODES = (Entry("<mode>", "command", "<help>", order=N),)``); :data:`PREPARE_MODES`
finds the declarations without importing the modules, so ``prepare --help`` stays light and a sub-command is
imported only when it runs (or shows its own ``--help``).
"""

from __future__ import annotations

import click

from w2p_eval.cli import harden
from w2p_eval.names import unknown
from w2p_eval.registry import Registry

# `prepare --help` and the docs' table list the modes from here; a test checks that every mode is a sub-command
PREPARE_MODES = Registry("prepare mode", None, packages=("w2p_eval.data",), marker="REGISTER_PREPARE_MODES")


class _Modes(click.Group):
    """The sub-commands of `prepare`, read from :data:`PREPARE_MODES` (each loaded when it is used)."""

    def list_commands(self, ctx):
        return PREPARE_MODES.names()

    def get_command(self, ctx, name):
        return harden(PREPARE_MODES.load(name)) if name in PREPARE_MODES else None

    def resolve_command(self, ctx, args):
        if args and args[0] not in PREPARE_MODES and not args[0].startswith("-"):
            raise click.UsageError(unknown("prepare mode", args[0], PREPARE_MODES.names()))
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter):
        with formatter.section("Commands"):
            formatter.write_dl([(e.name, e.help) for e in PREPARE_MODES.entries()])


@click.group("prepare", cls=_Modes)
def prepare() -> None:
    """Build a dataset folder: manifest.csv + dataset.json + faces/ + audio/ + prepare.log."""

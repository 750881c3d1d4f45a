"""The `w2p-eval` command. Verbs are imported lazily so `w2p-eval --help` stays fast.

Each verb lives in its own module (``w2p_eval.cli.<verb>``) and only parses options; the
work happens in the library. Add a verb by adding one line to ``VERBS``.
"""

from __future__ import annotations

import logging
import sys

import click

# name -> ("module:attr", one-line help shown by `w2p-eval --help` without importing the module)
VERBS: dict[str, tuple[str, str]] = {
    "prepare": ("w2p_eval.cli.prepare:prepare", "Build a dataset folder (videos, the WAV2PIX release, a folder, demo)."),
    "train": ("w2p_eval.cli.train:train", "Train WAV2PIX or a baseline from a YAML config."),
    "generate": ("w2p_eval.cli.generate:generate", "Write generated faces for a split from checkpoints."),
    "identity": ("w2p_eval.cli.identity:identity", "Identity accuracy and face-embedding metrics of checkpoints."),
    "landmarks": ("w2p_eval.cli.landmarks:landmarks", "68-point landmark detection rate and landmark error."),
    "evaluate": ("w2p_eval.cli.evaluate:evaluate", "Run every metric for every checkpoint into the results store."),
    "results": ("w2p_eval.cli.results:results", "Query the results store as a table."),
    "compare": ("w2p_eval.cli.compare:compare", "Compare two runs/image folders on the same test pairs (paired CIs)."),
    "testlist": ("w2p_eval.cli.testlist:testlist", "Freeze a split's galleries and matching tuples (JSON)."),
    "report": ("w2p_eval.cli.report:report", "Tables, figures, report.md and report.html from results."),
    "ablate-audio": ("w2p_eval.cli.ablate:ablate_audio", "Train/evaluate over audio lengths (the paper's ablation)."),
    "demo": ("w2p_eval.cli.demo:demo", "Build demo data, train, evaluate and report, offline, in minutes."),
}


def _load(spec: str) -> click.Command:
    from w2p_eval.names import resolve

    return harden(resolve(spec))


def _check_seed(ctx, param, value):
    from w2p_eval.validate import check_seed

    return value if value is None else check_seed(value, param.opts[0] if param.opts else "seed")


def _check_device(ctx, param, value):
    from w2p_eval.validate import check_device

    return check_device(value)


def _cap_workers(ctx, param, value):
    from w2p_eval.utils import cap_workers

    return value if value is None else cap_workers(value)


# option name -> callback applied to that option on every verb: one place checks seeds, devices, workers
_OPTION_CHECKS = {"seed": _check_seed, "device": _check_device, "workers": _cap_workers}


def harden(cmd: click.Command) -> click.Command:
    """Attach the shared checks of :data:`_OPTION_CHECKS` to a verb's options (and its sub-verbs')."""
    if getattr(cmd, "_w2p_hardened", False):
        return cmd
    for param in cmd.params:
        check = _OPTION_CHECKS.get(param.name or "")
        if check is not None and isinstance(param, click.Option) and param.callback is None:
            if param.name == "seed":
                param.type = click.STRING if param.type is click.INT else param.type  # big ints: our message
            param.callback = check
    for sub in getattr(cmd, "commands", {}).values():
        harden(sub)
    cmd._w2p_hardened = True
    return cmd


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(VERBS)

    def get_command(self, ctx, name):
        if name not in VERBS:
            return None
        return _load(VERBS[name][0])

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, help_) in VERBS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            from w2p_eval.names import unknown

            if args and args[0] not in VERBS:
                raise click.UsageError(unknown("command", args[0], VERBS)) from exc
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("-v", "--verbose", count=True, help="More logging on stderr (-v info, -vv debug).")
@click.version_option(package_name="w2p-eval")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """w2p-eval: train WAV2PIX (speech -> face GAN) and baselines, and score them like papers do."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if isinstance(ctx.obj, RepeatedWarnings):  # the command's own counter (:func:`_run`), none under click's runner
        ctx.obj.install(logging.getLogger().handlers)
    if "torch" not in sys.modules:  # torch reads these when it loads: too late once it is imported
        from w2p_eval.utils import configure_cpu_threads

        configure_cpu_threads()


class RepeatedWarnings(logging.Filter):
    """Each distinct warning (same logger, level and text) reaches stderr once; repeats are counted and
    :meth:`summary` gives one line per repeated warning with its count, printed at the end of the command."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[tuple[str, str, str], int] = {}
        self._handlers: list[logging.Handler] = []

    def install(self, handlers) -> None:
        self.uninstall()
        self.counts.clear()
        self._handlers = list(handlers)
        for h in self._handlers:
            h.addFilter(self)

    def uninstall(self) -> None:
        for h in self._handlers:
            h.removeFilter(self)
        self._handlers = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.levelname, record.name, record.getMessage())
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key] == 1

    def summary(self) -> list[str]:
        return [f"{level} {name}: {message} (×{n} in all, shown once)"
                for (level, name, message), n in self.counts.items() if n > 1]


def main(argv: list[str] | None = None) -> None:
    """Entry point: bad input is one line on stderr and exit code 2, never a traceback; an environment
    failure (disk full, read-only or unusable location) is one line and exit code 1."""
    from w2p_eval.errors import EnvironmentFailure, InputError, RunFailed

    folder = sys.modules.get("w2p_eval.data.folder")
    if folder is not None:  # a new command: its own skip report (datasets opened before it are not its own)
        folder.forget_reports()
    try:
        rv = _run(argv)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("w2p-eval: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"w2p-eval: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(2 if exc.exit_code in (1, 2) else exc.exit_code)
    except InputError as exc:
        click.echo(f"w2p-eval: error: {exc}", err=True)
        sys.exit(2)
    except EnvironmentFailure as exc:
        click.echo(f"w2p-eval: error: {exc}", err=True)
        sys.exit(1)
    except RunFailed as exc:
        click.echo(f"w2p-eval: failed: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:  # the environment: disk full, read-only filesystem, permissions
        click.echo(f"w2p-eval: error: {_environment_message(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:
        sqlite3 = sys.modules.get("sqlite3")
        if sqlite3 is None or not isinstance(exc, sqlite3.OperationalError):
            raise
        click.echo(f"w2p-eval: error: the results store could not be written or read ({exc}); "
                   f"check that its folder is writable and the disk is not full", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("w2p-eval: interrupted", err=True)
        sys.exit(130)
    _report_skips()
    sys.exit(rv if isinstance(rv, int) else 0)


def _run(argv):
    """The command itself; repeated warnings are summarised with their count at its end, however it ends (one
    counter per command, handed to the group through click's context object)."""
    repeats = RepeatedWarnings()
    try:
        return cli.main(args=argv, prog_name="w2p-eval", standalone_mode=False, obj=repeats)
    finally:
        for line in repeats.summary():
            click.echo(line, err=True)
        repeats.uninstall()


def _environment_message(exc: OSError) -> str:
    """One line for an OS error: what failed, on which file, and what to do."""
    import errno

    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    hints = {errno.ENOSPC: "free some disk space and run again", errno.EFBIG: "the file grew past the allowed size",
             errno.EROFS: "the filesystem is read-only; choose a writable location",
             errno.EACCES: "no permission; choose a location you can write",
             errno.EPERM: "not permitted; choose a location you can write"}
    if hasattr(errno, "EDQUOT"):
        hints[errno.EDQUOT] = "disk quota exceeded; free some space and run again"
    hint = hints.get(exc.errno, "an operating-system error")
    return " ".join(f"{exc.strerror or exc.__class__.__name__}{where}: {hint}".split())


def _report_skips() -> None:
    """Say at the end which dataset pairs were skipped as unreadable (only if a dataset was loaded). (Which test
    pairs a face source had no face for, and which of its files were ignored, each verb says from its
    Evaluation's notes.)"""
    manifest = sys.modules.get("w2p_eval.data.manifest")
    if manifest is not None:
        for line in manifest.skipped_report():
            click.echo(f"w2p-eval: note: {line}", err=True)

"""Options shared by the evaluation verbs (identity, landmarks, evaluate), defined once.

Each decorator adds a group of click options with one help text; :func:`face_sources` pairs every
``--images DIR`` with its ``--name NAME``. Nothing heavy is imported here (``--help`` stays fast).
"""

from __future__ import annotations

from typing import Sequence

import click

from w2p_eval.errors import InputError
from w2p_eval.judges import IDENTITY_BACKBONES, LANDMARK_BACKENDS
from w2p_eval.metrics.registry import SUITES

# the most galleries any verb draws: each is a full ranking of every probe, and past a few thousand the
# average no longer moves (its spread is far below the bootstrap interval) while the run takes minutes
N_GALLERIES_MAX = 10_000
INT_LIST_MAX = 100_000  # recall cut-offs and 1:N sizes: far above any dataset's identity count


def _stack(*decorators):
    def apply(fn):
        for dec in reversed(decorators):
            fn = dec(fn)
        return fn

    return apply


def data_option(required: bool = True, help_extra: str = ""):
    return click.option("--data", "data_dir", required=required, type=click.Path(file_okay=False), metavar="DATA",
                        help="Prepared dataset folder (manifest.csv + dataset.json)." + help_extra)


split_protocol_options = _stack(
    click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test"]),
                 help="Split scored."),
    click.option("--protocol", default="seen", show_default=True, type=click.Choice(["seen", "unseen"]),
                 help="Split protocol (seen: same speakers in train and test; unseen: new speakers)."),
)


def seed_option(what: str):
    return click.option("--seed", default=0, show_default=True, type=int, metavar="INT", help=f"Seed of {what}.")


device_option = click.option("--device", default=None, metavar="DEV",
                             help="torch device: cpu, cuda, cuda:1 ...  [default: cuda when available, else cpu]")
cache_dir_option = click.option(
    "--cache-dir", "--cache", "cache_dir", type=click.Path(file_okay=False), default=None, metavar="DIR",
    help="Cache of trained judges, real-face embeddings and landmarks.  [default: $W2P_CACHE or ~/.cache/w2p-eval]")


STORE_TIMEOUT_MAX = 7 * 24 * 3600


def _check_store_timeout(ctx, param, value):
    """--store-timeout S: how long a store locked by another process is waited for (then exit 1); the verb
    passes it to the stores it opens (``Runtime.store_timeout_s``, :func:`open_store_early`, :func:`store_and_print`)."""
    import math

    if value is not None and not (math.isfinite(value) and 0 <= value <= STORE_TIMEOUT_MAX):
        raise InputError(f"expected --store-timeout in seconds in [0, {STORE_TIMEOUT_MAX}], got {value}")
    return value


def store_options(with_no_store: bool = True):
    opts = [click.option("--store", type=click.Path(dir_okay=False), default=None, metavar="PATH",
                         help="Results store to write to.  [default: DATA/results.sqlite]"),
            click.option("--store-timeout", type=float, default=60.0, show_default=True, metavar="S",
                         callback=_check_store_timeout,
                         help="Seconds to wait for a results store another process has locked (then exit 1).")]
    if with_no_store:
        opts.append(click.option("--no-store", is_flag=True, help="Do not write the rows to a results store."))
    return _stack(*opts)


images_options = _stack(
    click.option("--images", "images", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
                 help="A folder of faces from any model, one per test pair, named <pair_id>.png|jpg|jpeg|webp (flat "
                      "or under <identity>/); repeatable, each with its own --name."),
    click.option("--name", "names", multiple=True, metavar="NAME",
                 help="The name the faces of the matching --images are stored and reported under (in order)."),
)

def backbone_option(fn):
    """--backbone NAME[,NAME]: identity judges; names and help from :data:`w2p_eval.judges.IDENTITY_BACKBONES`."""
    return click.option("--backbone", default="dlib_resnet", show_default=True, metavar="NAME[,NAME]",
                        help="Identity judge: " + IDENTITY_BACKBONES.help_text() + ". A comma list (e.g. "
                             "dlib_resnet,faceres) scores every source under each judge (the first is the primary "
                             "one); the report then compares them.")(fn)


def backend_option(fn):
    """--backend NAME[,NAME]: landmark judges of :data:`w2p_eval.judges.LANDMARK_BACKENDS` (checked by
    ``judges.landmarks.parse_backends``)."""
    return click.option("--backend", default="dlib", show_default=True, metavar="NAME[,NAME]",
                        help="Landmark judge: " + LANDMARK_BACKENDS.help_text() + ". A comma list (e.g. dlib,facemesh) "
                             "scores the landmark suites under each (the first is the primary one).")(fn)


def suites_option(flag: str, default: Sequence[str], what: str = ""):
    """``--metrics``/``--suites LIST``: metric suites of :data:`w2p_eval.metrics.registry.SUITES` (help generated)."""
    return click.option(flag, "suites", default=",".join(default), show_default=True, metavar="LIST",
                        help=f"Comma-separated metric suites{what}: " + SUITES.help_text() + ".")


vgg_weights_option = click.option(
    "--vgg-face-weights", type=click.Path(dir_okay=False), default=None, metavar="PTH",
    help="vgg_face_dag.pth for --backbone vgg_face.  [default: $W2P_VGG_FACE_WEIGHTS]")
standard_weights_options = _stack(
    click.option("--inception-weights", type=click.Path(dir_okay=False), default=None, metavar="PTH",
                 help="Inception-v3 weights (torch-fidelity's weights-inception-2015-12-05-6726825d.pth) for the "
                      "inception suite (Inception FID / IS).  [default: $W2P_INCEPTION_WEIGHTS; none: rows skipped]"),
    click.option("--vggface2-weights", type=click.Path(dir_okay=False), default=None, metavar="PT",
                 help="VGGFace2 ResNet-50 state_dict (8631 classes, torchvision layout; docs/recent-metrics.md) for "
                      "the vggface_score suite.  [default: $W2P_VGGFACE2_WEIGHTS; none: rows skipped]"),
)


def weight_files(inception_weights=None, vggface2_weights=None) -> dict[str, str]:
    """``Plan.weight_files`` from --inception-weights / --vggface2-weights (only those given)."""
    return {k: str(v) for k, v in (("inception", inception_weights), ("vggface2", vggface2_weights)) if v}


workers_option = click.option("--workers", type=click.IntRange(1), default=1, show_default=True, metavar="N",
                              help="Processes for per-image work (landmark detection, dlib face alignment).")
batch_size_option = click.option("--batch-size", "batch_size", type=click.IntRange(1, 4096), default=64,
                                 show_default=True, metavar="N", help="Faces per generator/judge forward.")
runtime_options = _stack(workers_option, batch_size_option, device_option, cache_dir_option)
"""The runtime every scoring verb accepts (``--workers --batch-size --device --cache``): how the work runs,
not what is scored (the plan: data, split, protocol, seed, suites, judges, test list)."""


def face_sources(images, names) -> list[tuple[str, str]]:
    """Pair ``--images`` with ``--name`` in order: one name each, none missing, none repeated."""
    images, names = list(images), list(names)
    if len(images) != len(names):
        raise InputError(f"expected one --name NAME for each --images DIR, got {len(images)} --images and "
                         f"{len(names)} --name")
    if any(not n.strip() for n in names):
        raise InputError("expected non-empty --name values, got an empty one")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"expected distinct --name values, got {dup[0]!r} more than once")
    return list(zip(images, names))


def open_store_early(data_dir, store, no_store, timeout_s: float | None = None) -> None:
    """Open the results store a verb will write before any work: an unusable, locked (waited for up to
    --store-timeout) or read-only store is reported now, not after minutes of scoring."""
    if not no_store and (store or data_dir):
        from pathlib import Path

        from w2p_eval.results import ResultsStore, default_store
        from w2p_eval.validate import check_location

        path = Path(store or default_store(data_dir))
        if path.exists():
            ResultsStore(path, timeout_s=timeout_s)  # schema, lock (waited for), read-only mount: all found now
        else:  # a new store is created only when there are rows to write
            check_location(path, "the results store", file=True)


def judge_options(backbone, vgg_face_weights=None) -> dict[str, dict]:
    """{judge: options} of a ``--backbone`` list: vgg_face's weights file (``--vgg-face-weights``)."""
    names = [n.strip() for n in backbone.split(",")] if isinstance(backbone, str) else list(backbone)
    return {"vgg_face": {"weights": vgg_face_weights}} if vgg_face_weights and "vgg_face" in names else {}


def echo_notes(lines) -> None:
    """The sources' notes (test pairs without a face, ignored files) at the end of the command."""
    for line in lines:
        click.echo(f"w2p-eval: note: {line}", err=True)


def store_and_print(scored, data_dir, store, no_store, as_json, formatter, timeout_s: float | None = None) -> None:
    """Write the scored rows (with their item values beside the store, waiting up to ``timeout_s`` for its
    lock) unless --no-store; print them as JSON or a table."""
    import json

    from w2p_eval.text import json_safe

    stored = None
    rows = [s.row for s in scored]
    if not no_store:
        from w2p_eval.evaluation import write_scored
        from w2p_eval.results import ResultsStore, default_store

        stored = store or default_store(data_dir)
        write_scored(stored, scored, ResultsStore(stored, timeout_s=timeout_s))
    if as_json:  # NaN (e.g. cosine to other centroids with one identity) -> null, so the output is strict JSON
        click.echo(json.dumps(json_safe(rows), indent=2, default=str, allow_nan=False))
    else:
        click.echo(formatter(rows))
    if stored is not None:
        click.echo(f"wrote {len(rows)} rows to {stored}", err=True)


def check_n_galleries(ctx, param, value):
    """--n-galleries in [1, N_GALLERIES_MAX], with the reason for the cap."""
    if value is not None and not 1 <= value <= N_GALLERIES_MAX:
        raise InputError(f"expected --n-galleries in [1, {N_GALLERIES_MAX}], got {value} (more galleries do not "
                         f"change the average beyond its interval and would run for a long time)")
    return value


def check_gallery_size(ctx, param, value):
    if value is not None and value < 2:
        raise InputError(f"expected --gallery-size of at least 2 identities, got {value}")
    return value


testlist_option = click.option(
    "--testlist", type=click.Path(dir_okay=False), default=None, metavar="FILE",
    help="Frozen test list (`w2p-eval testlist`): split, protocol, judge, retrieval galleries and matching tuples "
         "come from it; a list made for another dataset is refused; its id is stored in every row.")

protocol_settings_options = _stack(
    click.option("--gallery-size", type=int, default=None, metavar="G", show_default="min(100, test identities)",
                 callback=check_gallery_size,
                 help="Identities per retrieval gallery (retrieval suite; ignored with --testlist)."),
    click.option("--n-galleries", type=int, default=10, show_default=True, metavar="N", callback=check_n_galleries,
                 help="Seeded retrieval galleries averaged over (one when G = test identities)."),
    click.option("--matching", "matching", default=None, metavar="N,N", show_default="2,5,10 where possible",
                 help="1:N matching sizes (matching suite). Asked-for sizes the split cannot hold are refused; "
                      "defaults it cannot hold are skipped with a note."),
)




def int_list(value: str | None, what: str, low: int = 1, high: int = INT_LIST_MAX) -> list[int] | None:
    """``"2,5,10"`` -> [2, 5, 10], each in [low, high]; None -> None; anything else -> InputError."""
    if value is None:
        return None
    try:
        out = [int(x) for x in value.replace(" ", "").split(",") if x]
    except ValueError:
        raise InputError(f"expected {what} as comma-separated integers (e.g. 2,5,10), got {value!r}") from None
    if not out:
        raise InputError(f"expected at least one {what} value, got {value!r}")
    bad = [x for x in out if not low <= x <= high]
    if bad:
        raise InputError(f"expected {what} values in [{low}, {high}], got {bad[0]} (in {value!r})")
    return out



def given(*names: str) -> tuple[str, ...]:
    """Which of the current command's options ``names`` the user set explicitly (not their defaults)."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    return tuple(n for n in names if ctx.get_parameter_source(n) not in (ParameterSource.DEFAULT, None))

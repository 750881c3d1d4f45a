"""The one validation layer: every value read from a file or the command line is checked here.

Each check turns a malformed value into :class:`InputError` saying what was expected and what
arrived, before anything else is read or written. Covered: dataset.json, manifest rows (numbers and
path containment), checkpoints, training configs (``--set`` values), seeds, devices, worker counts
and output / store locations. Format ``version`` numbers are checked against what this code reads.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

import w2p_eval.lazy as lazy
from w2p_eval.errors import EnvironmentFailure, InputError
from w2p_eval.names import did_you_mean

DATASET_VERSIONS = (1,)
CHECKPOINT_VERSIONS = (1,)
IMAGE_SIZES = (64, 128)
SEED_MAX = 2**63 - 1  # what SQLite, numpy and torch all take
MAX_AUDIO_SECONDS = 10.0
# pseudo filesystems where no w2p-eval file may live
_SYSTEM_ROOTS = ("/proc", "/sys", "/dev")


def _short(value, n: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= n else text[: n - 3] + "..."


# -- scalars ---------------------------------------------------------------------------------------
def check_seed(value, what: str = "seed") -> int:
    """An integer in [0, 2^63 - 1]."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value), 10)
        except ValueError:
            raise InputError(f"expected an integer {what} in [0, 2^63-1], got {_short(value)}") from None
    if not 0 <= value <= SEED_MAX:
        raise InputError(f"expected an integer {what} in [0, 2^63-1], got {_short(value, 30)}")
    return int(value)


def check_device(name: str | None) -> str | None:
    """``None``/"auto"/"cpu"/"cuda"/"cuda:N"/"mps" that exists on this machine; anything else is refused."""
    if name in (None, "", "auto"):
        return name
    torch = lazy.torch
    try:
        dev = torch.device(str(name))
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"expected --device cpu, cuda, cuda:N or auto, got {_short(name)}")
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise InputError(f"expected a CUDA device for --device {name}, but CUDA is not available on this "
                             f"machine (use --device cpu)")
        if dev.index is not None and dev.index >= n:
            raise InputError(f"expected --device cuda:0..cuda:{n - 1} (this machine has {n}), got {name}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"expected an available device, got {name} (MPS is not available here; use --device cpu)")
    return str(name)


def finite_number(value, what: str, *, low: float | None = None, high: float | None = None,
                  low_open: bool = False, where: str = "") -> float:
    """A finite float, optionally in a range ("(0, 10]" style bounds)."""
    try:
        x = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        x = math.nan
    bad = not math.isfinite(x) or (low is not None and (x <= low if low_open else x < low)) or (
        high is not None and x > high)
    if bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        rng = f" in {lo or '(-inf'}, {'inf)' if high is None else f'{high:g}]'}" if low is not None or high is not None else ""
        raise InputError(f"expected a finite number{rng} for {what}{where}, got {_short(value)}")
    return x


def integer(value, what: str, *, low: int | None = None, where: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise InputError(f"expected an integer{'' if low is None else f' >= {low}'} for {what}{where}, "
                         f"got {_short(value)}")
    if low is not None and value < low:
        raise InputError(f"expected an integer >= {low} for {what}{where}, got {_short(value)}")
    return int(value)


# -- dataset.json ----------------------------------------------------------------------------------
def check_dataset_info(info, path, fmt: str = "w2p-eval-dataset") -> dict:
    """dataset.json: a mapping with the right format, a known version and a list of distinct, non-empty names."""
    FORMAT = fmt
    if not isinstance(info, dict):
        raise InputError(f"expected a JSON object in {path}, got a {type(info).__name__}")
    if info.get("format") != FORMAT:
        raise InputError(f"expected format {FORMAT!r} in {path}, got {_short(info.get('format'))}")
    if info.get("version") not in DATASET_VERSIONS:
        raise InputError(f"expected dataset format version {', '.join(map(str, DATASET_VERSIONS))} in {path}, "
                         f"got {_short(info.get('version'))} (made by a newer w2p-eval?)")
    names = info.get("identities")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise InputError(f"expected `identities` in {path} to be a list of non-empty names, got {_short(names)}")
    if len(set(names)) != len(names):
        raise InputError(f"expected distinct identity names in {path}, got duplicates")
    return info


# -- manifest rows ---------------------------------------------------------------------------------
def resolve_inside(data_dir: Path, rel) -> Path | None:
    """``data_dir / rel`` if ``rel`` is a relative path that stays inside ``data_dir`` after resolving
    symlinks and ``..``; None for absolute paths, escapes and symlinks leading out."""
    text = str(rel)
    if not text or text.startswith(("/", "\\")) or os.path.isabs(text) or "\x00" in text:
        return None
    if ".." in Path(text).parts:
        return None
    root = data_dir.resolve()
    try:
        full = (root / text).resolve()
    except (OSError, RuntimeError):  # symlink loop
        return None
    return full if full.is_relative_to(root) else None


class InsideResolver:
    """:func:`resolve_inside` for many paths of one dataset, checking containment once per folder, not per file.

    Each folder a manifest names is resolved (symlinks followed) once and must stay inside the dataset; its
    entries are listed once (``os.scandir``), and only entries that are themselves symlinks are resolved one
    by one. Same answers as :func:`resolve_inside`: None for absolute paths, ``..``, NUL and anything whose
    resolved location leaves the dataset (symlinked folders and files included).
    """

    def __init__(self, data_dir: Path):
        self.root = Path(data_dir).resolve()
        self._folders: dict[str, Path | None] = {}
        self._links: dict[str, set[str]] = {}

    def _folder(self, rel: str) -> Path | None:
        if rel not in self._folders:
            try:
                full = (self.root / rel).resolve()
            except (OSError, RuntimeError):  # symlink loop
                full = None
            full = full if full is not None and full.is_relative_to(self.root) else None
            links: set[str] = set()
            if full is not None:
                try:
                    with os.scandir(full) as it:
                        links = {e.name for e in it if e.is_symlink()}
                except OSError:  # not a folder (missing files are found by the content check)
                    pass
            self._folders[rel], self._links[rel] = full, links
        return self._folders[rel]

    def __call__(self, rel) -> Path | None:
        text = str(rel)
        if not text or text.startswith(("/", "\\")) or os.path.isabs(text) or "\x00" in text:
            return None
        parts = Path(text).parts
        if ".." in parts:
            return None
        parent = str(Path(*parts[:-1])) if len(parts) > 1 else "."
        folder = self._folder(parent)
        if folder is None:
            return None
        if parts[-1] not in self._links[parent]:
            return folder / parts[-1]
        try:  # a symlinked entry: resolved on its own
            full = (folder / parts[-1]).resolve()
        except (OSError, RuntimeError):
            return None
        return full if full.is_relative_to(self.root) else None


def manifest_row_problems(df, data_dir: Path, identities: list[str], resolver: InsideResolver | None = None):
    """Per-row checks of a manifest: -> (ok mask, {row index: (reason, detail)}).

    Rows with non-numeric, non-finite or negative ``audio_start``/``audio_duration`` and rows whose paths
    leave the dataset folder are bad rows (skipped and counted by the caller). An identity that
    dataset.json does not list is a broken dataset and refused outright, naming the row.
    """
    np, pd = lazy.numpy(), lazy.pandas()
    known = set(identities)
    unknown = ~df["identity"].isin(known)
    if unknown.any():
        row = df[unknown].iloc[0]
        raise InputError(f"expected every manifest identity in dataset.json's identities, got "
                         f"{_short(row['identity'])} for pair {_short(row['pair_id'])} "
                         f"({int(unknown.sum())} such rows)")
    problems: dict[int, tuple[str, str]] = {}
    start = pd.to_numeric(df["audio_start"], errors="coerce").to_numpy(dtype=float)
    dur = pd.to_numeric(df["audio_duration"], errors="coerce").to_numpy(dtype=float)
    bad_num = ~np.isfinite(start) | ~np.isfinite(dur) | (start < 0) | (dur <= 0)
    for i in np.flatnonzero(bad_num):
        problems[int(i)] = ("bad audio offsets", f"audio_start={_short(df['audio_start'].iloc[i], 20)}, "
                                                 f"audio_duration={_short(df['audio_duration'].iloc[i], 20)}")
    inside = resolver or InsideResolver(data_dir)
    for col in ("image_path", "audio_path"):
        for i, rel in enumerate(df[col]):
            if i not in problems and inside(rel) is None:
                problems[i] = ("path outside the dataset", f"{col}={_short(rel)}")
    return problems


# -- checkpoints -----------------------------------------------------------------------------------
def check_checkpoint(ckpt: dict, path) -> dict:
    """Types, ranges and version of a loaded checkpoint dict; every tensor in ``state`` finite."""
    torch = lazy.torch
    where = f" in checkpoint {path}"
    if ckpt.get("version") not in CHECKPOINT_VERSIONS:
        raise InputError(f"expected checkpoint version {', '.join(map(str, CHECKPOINT_VERSIONS))}{where}, "
                         f"got {_short(ckpt.get('version'))} (made by a newer w2p-eval?)")
    if not isinstance(ckpt.get("model"), str):
        raise InputError(f"expected a model name (text){where}, got {_short(ckpt.get('model'))}")
    integer(ckpt.get("epoch"), "epoch", low=0, where=where)
    names = ckpt.get("identities")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InputError(f"expected `identities` to be a list of names{where}, got {_short(names)}")
    size = ckpt.get("image_size")
    if isinstance(size, bool) or size not in IMAGE_SIZES:
        raise InputError(f"expected image_size 64 or 128{where}, got {_short(size)}")
    finite_number(ckpt.get("audio_seconds"), "audio_seconds", low=0, high=MAX_AUDIO_SECONDS, low_open=True,
                  where=where)
    for key in ("config", "state"):
        if not isinstance(ckpt.get(key), dict):
            raise InputError(f"expected `{key}` to be a mapping{where}, got {type(ckpt.get(key)).__name__}")
    for name, part in ckpt["state"].items():
        tensors = part.values() if isinstance(part, dict) else [part]
        for t in tensors:
            if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise InputError(f"expected finite weights{where}, got NaN/inf in {name!r} (a broken checkpoint)")
    return ckpt


# -- training configs ------------------------------------------------------------------------------
# key -> (kind, low, low_open); applied to every resolved config whatever the trainer
CONFIG_RULES = {
    "seed": ("seed", None, False),
    "epochs": ("int", 1, False), "batch_size": ("int", 1, False), "checkpoint_every": ("int", 1, False),
    "num_workers": ("int", 0, False), "threads": ("int?", 1, False), "n_samples": ("int", 0, False),
    "pool_per_identity": ("int", 1, False), "medoid_candidates": ("int", 1, False),
    "lr_g": ("float", 0, True), "lr_d": ("float", 0, True), "speaker_C": ("float", 0, True),
    "adv_weight": ("float", 0, False), "feature_weight": ("float", 0, False), "l1_weight": ("float", 0, False),
    "aux_weight": ("float", 0, False), "real_label": ("float01", 0, True),
}


def check_config_values(cfg: dict) -> dict:
    """Ranges of the known keys of a resolved training config (the YAML and every --set value)."""
    for key, (kind, low, low_open) in CONFIG_RULES.items():
        if key not in cfg:
            continue
        value = cfg[key]
        if kind == "seed":
            cfg[key] = check_seed(value, "seed")
        elif kind == "int?" and value is None:
            continue
        elif kind in ("int", "int?"):
            cfg[key] = integer(value, key, low=low)
        elif kind == "float":
            cfg[key] = finite_number(value, key, low=low, low_open=low_open)
        elif kind == "float01":
            cfg[key] = finite_number(value, key, low=0, high=1, low_open=True)
    if "betas" in cfg:
        betas = cfg["betas"]
        ok = isinstance(betas, (list, tuple)) and len(betas) == 2 and all(
            not isinstance(b, bool) and isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
        if not ok:
            raise InputError(f"expected betas as two numbers in [0, 1), e.g. [0.5, 0.999], got {_short(betas)}")
        cfg["betas"] = [float(b) for b in betas]
    if "image_size" in cfg and (isinstance(cfg["image_size"], bool) or cfg["image_size"] not in IMAGE_SIZES):
        raise InputError(f"expected image_size 64 or 128, got {_short(cfg['image_size'])}")
    if "audio_seconds" in cfg:
        cfg["audio_seconds"] = finite_number(cfg["audio_seconds"], "audio_seconds", low=0, high=MAX_AUDIO_SECONDS,
                                             low_open=True)
    return cfg


# -- locations -------------------------------------------------------------------------------------
def check_location(path, what: str, *, file: bool) -> Path:
    """A place a file (``file=True``) or folder may be created: not under /proc, /sys or /dev, no
    regular file among its parents, the path itself not of the other kind."""
    path = Path(path)
    absolute = Path(os.path.abspath(path))
    if any(absolute == Path(root) or absolute.is_relative_to(root) for root in _SYSTEM_ROOTS):
        raise InputError(f"expected {what} on a real filesystem, got {path} (under a system folder)")
    for parent in absolute.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"expected {what} inside a folder, got {path} ({parent} is a file)")
            break
    if file and path.is_dir():
        raise InputError(f"expected {what} to be a file, got folder {path}")
    if not file and path.exists() and not path.is_dir():
        raise InputError(f"expected {what} to be a folder, got existing file {path}")
    return path


def store_problem(path, exc) -> str:
    """One line for an SQLite failure that is the machine's, not the file's: the store's folder on a
    read-only mount or not writable, the disk full, another process's lock."""
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        st = os.statvfs(folder)
        read_only, free = bool(st.f_flag & os.ST_RDONLY), st.f_bavail * st.f_frsize
    except OSError:
        read_only, free = False, None
    if read_only:
        cause = f"{folder} is on a read-only filesystem; choose a store on a writable disk"
    elif free is not None and free < 1 << 20:
        cause = f"the disk holding {folder} is full ({free} bytes free); free some space and run again"
    elif not os.access(folder, os.W_OK):
        cause = f"no permission to write in {folder}; choose a location you can write"
    else:
        cause = "check that its folder is writable and the disk is not full"
    return f"the results store {path} could not be opened or written (SQLite: {exc}): {cause}"


def check_store(path, columns, *, write: bool, timeout_s: float = 5.0) -> Path:
    """A results store location: a usable place for the file and, when the file exists, an SQLite
    database whose ``results`` table has ``columns``. The schema is read with a read-only connection,
    so an unrelated database is refused without being changed (no table added, no WAL switch).
    A store SQLite cannot open for reasons of the machine (read-only mount, full disk, a lock held past
    ``timeout_s``) is an EnvironmentFailure (exit 1), not bad input: the file itself is a valid store."""
    path = check_location(path, "the results store", file=True)
    if not path.exists():
        if not write:
            raise InputError(f"expected a results store, got missing file {path} (run `w2p-eval evaluate` first)")
        return path
    if path.stat().st_size == 0:
        if not write:
            raise InputError(f"expected a results store, got an empty file {path}")
        return path
    try:
        try:
            have = _schema(path, min(1.0, timeout_s))
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() and "busy" not in str(exc).lower():
                raise
            logging.getLogger(__name__).warning("the results store %s is locked by another process; waiting up to "
                                                "%g s (--store-timeout)", path, timeout_s)
            have = _schema(path, max(0.0, timeout_s - 1.0))
    except sqlite3.OperationalError as exc:  # the file could not be read as it is: the machine's problem
        if "unable to open" in str(exc).lower() and os.access(path, os.R_OK) and not write:
            return path  # a WAL store on a read-only mount: ResultsStore reads it immutable
        if "locked" in str(exc).lower() or "busy" in str(exc).lower():
            raise EnvironmentFailure(f"the results store {path} stayed locked by another process for {timeout_s:g} s "
                                     f"(--store-timeout); wait for that process to finish, or pass a larger "
                                     f"--store-timeout") from None
        if not _is_sqlite_file(path):
            raise InputError(f"expected an SQLite results store, got {path} ({exc})") from None
        raise EnvironmentFailure(store_problem(path, exc)) from None
    except sqlite3.DatabaseError as exc:
        raise InputError(f"expected an SQLite results store, got {path} ({exc})") from None
    missing = [c for c in columns if c not in have]
    if not have:
        raise InputError(f"expected a w2p-eval results store, got {path}: an SQLite file without a `results` "
                         f"table (left unchanged)")
    if missing:
        raise InputError(f"expected a w2p-eval results table with columns {list(columns)} in {path}, "
                         f"missing {missing}")
    return path


def _schema(path, timeout_s: float) -> set[str]:
    """The column names of ``path``'s ``results`` table, read through a read-only connection."""
    con = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True, timeout=timeout_s)
    try:
        return {r[1] for r in con.execute("PRAGMA table_info(results)")}
    finally:
        con.close()


def _is_sqlite_file(path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def check_choice(name, choices, what: str) -> str:
    """``name`` exactly one of ``choices`` (names are case-sensitive), else a one-line hint."""
    if name not in choices:
        hint = did_you_mean(name, choices, fold_case=True)
        raise InputError(f"expected {what} one of {', '.join(choices)}, got {_short(name)}{hint}")
    return name

"""Small shared helpers: atomic writes, the cache folder, devices, provenance, skip counting, table cells.

Kept light (no torch/numpy/pandas at import): the CLI's option checks use it before any work starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import json
import logging
import os
import platform
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import w2p_eval.lazy as lazy

log = logging.getLogger(__name__)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it over ``path`` with os.replace.

    On error the temporary file is removed, so ``path`` is either the old file or the complete new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    honour_umask(tmp_path)  # mkstemp creates 0600; the final file gets what open() would have given it
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask is racy in threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def honour_umask(path: str | os.PathLike) -> None:
    """chmod a file made by mkstemp (0600) or a folder made by mkdtemp (0700) to what the umask allows,
    as if it had been created with open()/mkdir()."""
    base = 0o777 if Path(path).is_dir() else 0o666
    os.chmod(path, base & ~current_umask())


def make_temp_dir(prefix: str, dir: str | os.PathLike) -> Path:
    """tempfile.mkdtemp, but with the permissions the user's umask gives a new folder."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=dir))
    honour_umask(tmp)
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | os.PathLike, n_chars: int = 16) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n_chars]


def sha256_json(obj, n_chars: int = 16) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n_chars]


def default_cache_dir() -> Path:
    """The cache root of trained judges, embeddings, landmarks and dataset records (:mod:`w2p_eval.cache`):
    ``$W2P_EVAL_CACHE``, else ``$W2P_CACHE`` (its older name), else ``~/.cache/w2p-eval``."""
    return Path(os.environ.get("W2P_EVAL_CACHE") or os.environ.get("W2P_CACHE") or Path.home() / ".cache" / "w2p-eval")


def select_device(device: str | None = None) -> str:
    """``None``/"auto" -> "cuda" when available else "cpu"; otherwise the given name."""
    if device in (None, "", "auto"):
        return "cuda" if lazy.torch.cuda.is_available() else "cpu"
    return device


PROVENANCE_PACKAGES = (
    "w2p-eval", "torch", "torchvision", "numpy", "dlib-bin", "dlib", "face-alignment",
    "facenet-pytorch", "opencv-python", "scikit-learn", "pandas",
)


def package_versions(names=PROVENANCE_PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    """The commit of the w2p-eval source tree, or None outside a git checkout."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class Skips:
    """Counts skipped items by reason, logs each one, summarises at the end."""

    def __init__(self, what: str = "items"):
        self.what = what
        self.counts: Counter[str] = Counter()
        self.items: list[tuple[str, str]] = []

    def add(self, item: str, reason: str) -> None:
        self.counts[reason] += 1
        self.items.append((str(item), reason))
        log.debug("skipped %s: %s", item, reason)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return f"no {self.what} skipped"
        parts = ", ".join(f"{n} {reason}" for reason, n in self.counts.most_common())
        return f"skipped {len(self)} {self.what}: {parts}"


def cap_workers(n: int | None) -> int:
    """Worker processes: at least 1 and at most the CPUs this process may use (logged when capped)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    n = 1 if n is None else int(n)
    if n > cpus:
        log.warning("--workers %d capped to %d (the CPUs available to this process)", n, cpus)
    return max(1, min(n, cpus))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?( ± [\d.eE+-]+)?( ?%)?$")


def csv_cell(value):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or a tab / CR) gets a leading
    apostrophe (OWASP's advice); numbers, and text that is just a number such as "-0.5 ± 0.1", are kept."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def csv_safe(df):
    """A copy of a DataFrame whose text cells, column names and index labels pass through :func:`csv_cell`."""
    is_numeric_dtype = lazy.pandas().api.types.is_numeric_dtype
    out = df.copy()
    for col in out.columns:
        if not is_numeric_dtype(out[col]):  # object or (pandas 3) str columns
            out[col] = out[col].map(csv_cell)
    out.columns = [csv_cell(c) if isinstance(c, str) else c for c in out.columns]
    if not is_numeric_dtype(out.index):
        out.index = out.index.map(csv_cell)
    return out


def default_threads(cores: int | None = None) -> int:
    """torch CPU threads for a command: ``$W2P_THREADS`` when set, else every available core. Deliberately not
    derived from the machine's load: the thread count changes float summation order (a training step's weights
    differ between 1 and 2 threads), so a load-dependent count would make the same seed give different results
    on the same machine. Oversubscription beside other processes is handled by passive OpenMP waiting
    (:func:`configure_cpu_threads`); on a busy machine ``W2P_THREADS=1`` is faster still (BENCHMARKS.md)."""
    env = os.environ.get("W2P_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, int(cores))


def configure_cpu_threads() -> None:
    """Before torch is imported (the CLI's start): OMP_NUM_THREADS = :func:`default_threads` and
    OMP_WAIT_POLICY=PASSIVE (waiting threads sleep instead of spinning on a shared core), unless already set."""
    if "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(default_threads())
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


KEEP_FREED_ENV = "W2P_KEEP_FREED_MEMORY"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


@functools.lru_cache(maxsize=None)  # once per process: mallopt's settings are process-wide themselves
def keep_freed_memory(mmap_mib: int = 256, trim_mib: int = 512) -> bool:
    """Let the process reuse the memory of freed large tensors instead of returning it to the system (glibc's
    ``M_MMAP_THRESHOLD`` / ``M_TRIM_THRESHOLD``; once per process, process-wide). By default glibc gives every
    block over 32 MiB its own mapping and unmaps it on free, so a CNN forward on the CPU whose activations are
    that large (FaceRes at 32 x 224 px: up to 103 MB each) takes a page fault for every 4 KiB of every new
    activation, every call: about a third of its time on the shared VM (BENCHMARKS.md, issue 28 round 4). After
    this call, blocks below ``mmap_mib`` come from the heap and up to ``trim_mib`` of free heap top is kept.
    Skipped (False) off Linux/glibc, when ``$W2P_KEEP_FREED_MEMORY`` is 0, or when glibc's own malloc settings
    are in the environment (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``), which
    are then left to rule. Returns whether the settings are in force."""
    env = os.environ
    why = ("$W2P_KEEP_FREED_MEMORY=0" if env.get(KEEP_FREED_ENV, "").strip() == "0" else
           "glibc malloc settings in the environment" if any(k in env for k in (
               "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")) else
           "not Linux with glibc" if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc"
           else None)
    if why is not None:
        log.debug("freed memory returned to the system as the allocator decides (%s)", why)
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
        done = bool(mallopt(_M_TRIM_THRESHOLD, trim_mib << 20)) and bool(mallopt(_M_MMAP_THRESHOLD, mmap_mib << 20))
    except (OSError, AttributeError) as exc:
        log.debug("could not set glibc's malloc thresholds: %s", exc)
        done = False
    log.debug("freed blocks below %d MiB kept for reuse: %s", mmap_mib, done)
    return done


def set_threads(n: int | None) -> None:
    """Limit torch intra-op threads (None leaves the default)."""
    if n:
        lazy.torch.set_num_threads(int(n))


def topk_accuracy(logits, labels, k: int) -> float:
    """Share of rows (float [N, C] logits, int [N] labels) whose label is among the ``k`` largest logits;
    ``k`` is capped at the class count, ties go to the lower class index, NaN for no rows."""
    np = lazy.numpy()
    logits, labels = np.asarray(logits), np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(axis=1).mean())


def connect_readonly(path: str | os.PathLike, timeout_s: float = 60.0):
    """An SQLite connection that cannot change the file: ``mode=ro``; on a read-only mount, where a WAL
    database cannot create its -shm file, ``immutable=1``."""
    uri = f"file:{quote(os.path.abspath(path))}"
    con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=timeout_s, isolation_level=None)
    try:
        con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return con
    except sqlite3.OperationalError:
        con.close()
        if os.access(os.path.dirname(os.path.abspath(path)), os.W_OK):
            raise
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=timeout_s, isolation_level=None)


def write_failure(path: str | os.PathLike, exc: BaseException) -> OSError:
    """An OSError for a library's write failure that is not one (e.g. soundfile's LibsndfileError on a full
    disk), with the errno the machine's state explains: a read-only mount (EROFS), a full disk (ENOSPC),
    a file-size limit (EFBIG), else EIO. ``cli.main`` turns it into one line and exit 1."""
    folder = Path(os.path.abspath(path)).parent
    code = errno.EIO
    try:
        st = os.statvfs(folder)
        if st.f_flag & os.ST_RDONLY:
            code = errno.EROFS
        elif st.f_bavail * st.f_frsize < 1 << 20:
            code = errno.ENOSPC
        elif resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY:
            code = errno.EFBIG
    except OSError:
        pass
    detail = " ".join(str(exc).split())
    return OSError(code, f"{os.strerror(code)} ({detail})", str(path))

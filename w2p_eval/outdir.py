"""Output folders: a command owns only what it writes, and one folder has one writer at a time.

- :func:`claim` refuses an ``--out`` folder that holds files a w2p-eval command did not put there.
  Folders we create carry a marker file (``.w2p-eval.json``: the command and the files it wrote),
  so a re-run recognises its own folder and touches nothing else.
- :class:`FolderLock` is an ``fcntl.flock`` lock file holding the writer's pid and host; the kernel
  drops it when the process dies, so a killed run never blocks the next one.
- :func:`clean_stale_partials` removes the hidden ``.NAME.partial-*`` staging folders that killed
  runs left beside ``NAME`` (only while holding NAME's lock, so they cannot belong to a live writer).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from w2p_eval.errors import InputError
from w2p_eval.utils import atomic_write_json
from w2p_eval.validate import check_location

log = logging.getLogger(__name__)

MARKER = ".w2p-eval.json"
LOCK = ".w2p-eval.lock"


def read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_marker(folder: Path, command: str, files: Iterable[str] = ()) -> None:
    atomic_write_json(Path(folder) / MARKER, {"command": command, "files": sorted(set(files))})


def claim(out, command: str, *, own: Callable[[Path], bool] | None = None) -> Path:
    """Check that ``out`` may be written by ``command``: a new or empty folder, or one ``command`` made
    (its marker), or one ``own(out)`` recognises (e.g. a run folder from before markers existed).
    Anything else is refused with one line; nothing is read or written here."""
    out = check_location(out, "--out", file=False)
    if not out.is_dir():
        return out
    entries = [p.name for p in out.iterdir() if p.name != LOCK]
    if not entries:
        return out
    marker = read_marker(out)
    if marker is not None and marker.get("command") == command:
        return out
    if own is not None and own(out):
        return out
    made_by = f" (made by `w2p-eval {marker.get('command')}`)" if marker else ""
    raise InputError(f"expected --out to be a new or empty folder or an earlier {command} (made by `w2p-eval {command}`), "
                     f"got {out} holding {len(entries)} other entries{made_by}; choose another --out")


class FolderLock:
    """Exclusive writer lock for a folder: ``lock_file`` opened and ``flock``ed (non-blocking).

    A second writer gets an InputError naming the holder's pid and host. The kernel releases the lock
    when the holder exits, however it exits, so a stale lock file never blocks anyone.
    """

    def __init__(self, lock_file, what: str):
        self.path = Path(lock_file)
        self.what = what
        self.fd: int | None = None

    def __enter__(self) -> "FolderLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(5):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise InputError(f"expected no other writer of {self.what}, but {holder} is writing it "
                                     f"(lock {self.path}); wait for it to finish or choose another --out") from None
                raise
            try:  # the file may have been unlinked by the previous holder between open and flock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
                self.fd = fd
                return self
            os.close(fd)
        raise InputError(f"could not take the lock {self.path} (it keeps being replaced)")

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def sibling_lock(out: Path) -> FolderLock:
    """The lock for a folder that is staged beside itself and moved into place (prepare, report)."""
    out = Path(os.path.abspath(out))
    return FolderLock(out.parent / f".{out.name}.lock", str(out))


def clean_stale_partials(out: Path) -> int:
    """Remove ``.NAME.partial-*`` folders beside ``out`` (call while holding ``out``'s lock)."""
    out = Path(os.path.abspath(out))
    if not out.parent.is_dir():
        return 0
    n = 0
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
            n += 1
    if n:
        log.warning("removed %d unfinished staging folder(s) .%s.partial-* left by an interrupted run", n, out.name)
    return n


@contextmanager
def owned_folder(out, command: str, what: str) -> Iterator[Path]:
    """Claim ``out`` for ``command``, create it, hold its lock and mark it as ours while the body writes.
    If the body fails and the folder was new, the folder is removed again when nothing but our own
    bookkeeping is in it, so a refused run leaves no trace."""
    out = claim(out, command)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with FolderLock(out / LOCK, what):
            if read_marker(out) is None:
                write_marker(out, command)
            yield out
    except BaseException:
        if created and {p.name for p in out.iterdir()} <= {MARKER}:
            (out / MARKER).unlink(missing_ok=True)
            out.rmdir()
        raise

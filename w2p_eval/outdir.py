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
    """The folder's marker, or None when there is none, it is unreadable, or it is not to be trusted:
    ``files`` must be a list of names relative to ``folder`` (no absolute path, no ``..``, nothing that
    resolves through a symlink to outside the folder). A marker that fails this makes the folder not ours."""
    data = _raw_marker(folder)
    return data if data is not None and marker_problem(folder, data) is None else None


def _raw_marker(folder: Path) -> dict | None:
    marker = Path(folder) / MARKER
    if marker.is_symlink():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def marker_problem(folder: Path, data: dict) -> str | None:
    """Why a marker's file list cannot be trusted (its first bad entry), or None."""
    files = data.get("files", [])
    if not isinstance(files, list):
        return "its file list is not a list"
    for rel in files:
        why = marker_entry_problem(folder, rel)
        if why is not None:
            return f"its file list names {str(rel)[:80]!r}, {why}"
    return None


def marker_entry_problem(folder: Path, rel) -> str | None:
    """Why ``rel`` (a marker entry) cannot be one of ``folder``'s own files, or None when it can."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        return "not a file name"
    if os.path.isabs(rel) or rel.startswith(("/", "\\")):
        return "an absolute path"
    if ".." in Path(rel).parts:
        return "a path with .."
    root = Path(os.path.realpath(folder))
    if not Path(os.path.realpath(root / rel)).is_relative_to(root):
        return "a path leading outside the folder"
    if symlink_inside(folder, rel):
        return "a path through a symlink"
    return None


def symlink_inside(folder: Path, rel: str) -> Path | None:
    """The first component of ``folder / rel`` (below ``folder``) that is a symlink, or None."""
    cur = Path(folder)
    for part in Path(rel).parts:
        cur = cur / part
        if cur.is_symlink():
            return cur
    return None


def write_marker(folder: Path, command: str, files: Iterable[str] = ()) -> None:
    atomic_write_json(Path(folder) / MARKER, {"command": command, "files": sorted(set(files))})


def refuse_links(out, rels: Iterable[str]) -> None:
    """InputError when any of the paths ``rels`` a command is about to write inside ``out`` goes through a
    symlink below ``out`` (``R/tables -> elsewhere``): a command never writes through a link."""
    out = Path(out)
    if not out.is_dir():
        return
    for rel in rels:
        link = symlink_inside(out, rel)
        if link is not None:
            raise InputError(f"expected --out to hold real folders and files, got symlink {link} -> "
                             f"{os.readlink(link)} where the command writes (left unchanged); remove the link or "
                             f"choose another --out")


def _json_format(path: Path, max_bytes: int = 1 << 30) -> str | None:
    """The ``format`` field of a JSON object file (None when not JSON, not an object, or too large)."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data.get("format") if isinstance(data, dict) else None


def json_of_format(fmt: str) -> Callable[[Path], bool]:
    """A recogniser for :func:`claim_file`: the file is a JSON object whose ``format`` is ``fmt``."""
    return lambda path: _json_format(path) == fmt


def text_starting_with(first_line: str) -> Callable[[Path], bool]:
    """A recogniser for :func:`claim_file`: the file's first line is exactly ``first_line`` (a CSV header)."""
    def ours(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                head = fh.readline(len(first_line) + 2)
        except OSError:
            return False
        return head.rstrip(b"\r\n") == first_line.encode()
    return ours


def claim_file(out, command: str, *, ours: Callable[[Path], bool], inputs: Iterable = (),
               what: str = "--out") -> Path:
    """Check that the single output file ``out`` may be written by ``command`` -> its path.

    Refused (InputError, one line, nothing read or written): a location that cannot hold a file
    (:func:`check_location`), a symlink, a path that is (after resolving symlinks) one of the command's
    ``inputs`` (store, manifest.csv, dataset.json, test list, checkpoint...), or an existing file that
    ``ours(path)`` does not recognise as one ``command`` wrote (its format field or header). The caller
    then writes it through :func:`w2p_eval.utils.atomic_path` (temp file + os.replace)."""
    out = check_location(out, what, file=True)
    if out.is_symlink():
        raise InputError(f"expected {what} to be a regular file, got symlink {out} -> {os.readlink(out)} "
                         f"(left unchanged); choose another {what}")
    real = os.path.realpath(out)
    for inp in inputs:
        if inp is not None and os.path.realpath(inp) == real:
            raise InputError(f"expected {what} to be a new file, got {out}, which is an input of this command "
                             f"({inp}); choose another {what}")
    if out.exists() and not ours(out):
        raise InputError(f"expected {what} to be a new file or one `w2p-eval {command}` wrote, got existing {out} "
                         f"which it did not write (left unchanged); choose another {what}")
    return out


def dataset_inputs(data_dir) -> list[Path]:
    """The files of a dataset folder a command reads (manifest.csv, dataset.json, the default store)."""
    if not data_dir:
        return []
    d = Path(data_dir)
    return [d / "manifest.csv", d / "dataset.json", d / "results.sqlite"]


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
    raw = _raw_marker(out) if marker is None else None
    if raw is not None and marker_problem(out, raw):  # a forged or damaged marker: the folder is not ours
        made_by = f" (its marker {MARKER} is not trusted: {marker_problem(out, raw)})"
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
            try:  # O_NOFOLLOW: a lock file planted as a symlink is never followed (and never truncated)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise InputError(f"expected the lock file {self.path} to be a plain file, got a symlink to "
                                 f"{os.readlink(self.path)} (left unchanged); remove it") from None
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

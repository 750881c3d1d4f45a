"""The one disk cache of the package: every judge, metric and dataset record that is kept between commands.

    cache = Cache(root, "identity", version=1, fmt="torch")   # root: a folder; None = default_cache_dir(); False = off
    value = cache.get_or_compute(key, compute, validate)      # key: a dict of what the value depends on
    value = cache.load(key, validate)                         # None when absent or refused (with a note)
    cache.save(key, value)                                    # False when the cache cannot be written (a note)

- **Key.** ``key`` names the inputs (their hashes: manifest hash, pixel digest ...) and the extractor (network,
  judge or code version) the value was computed from; the entry's file is ``<root>/<namespace>/<name>-<digest>.<ext>``
  (``name`` = ``key["name"]`` when given, for people reading the folder; ``digest`` = sha256 of namespace,
  ``version`` and the whole key). Any change of an input or a version is another file.
- **Formats** (never pickle): ``"npz"`` (a dict of numpy arrays, read with ``allow_pickle=False``), ``"json"``
  (any JSON value), ``"torch"`` (a dict of tensors / numbers / strings, read with ``weights_only=True``).
- **Integrity.** Beside each entry, ``<entry>.sha256`` records the size and the sha256 of the entry's bytes, bound
  to its namespace, version and key, written when the entry was written. Every read hashes the bytes it parses;
  a missing record, a size or hash mismatch (an edited, truncated or swapped entry), bytes that do not parse, or a
  value ``validate`` refuses (wrong shape, dtype or type, NaN/inf; ``validate(value) -> problem text | None``,
  see :func:`array_problem`) is a one-line warning naming the entry, and the entry is recomputed, never used.
  Threat model: this catches corruption, truncation, careless edits of the payload and entries copied under
  another key; it is not a signature. Whoever can write the cache folder can also write a matching record with
  this module, so a cache shared with people you do not trust is not a trust boundary (see docs/reliability.md).
- **Lock and atomic write.** :meth:`get_or_compute` holds an exclusive ``flock`` on ``<entry>.lock`` while it
  reads, computes and writes (processes sharing a cache, e.g. torchrun ranks, compute each entry once); entry and
  record are written to temporary files and moved into place (:func:`w2p_eval.utils.atomic_path`).
- **Unwritable.** A cache folder that cannot be created or written (read-only, full disk) is a one-line warning;
  the value is computed and used in memory, and the command goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

import w2p_eval.lazy as lazy
from w2p_eval.utils import atomic_path, default_cache_dir, sha256_json

log = logging.getLogger(__name__)

FORMAT = "w2p-eval-cache/1"
EXTENSIONS = {"npz": "npz", "json": "json", "torch": "pt"}
Validator = Callable[[Any], "str | None"]


class Cache:
    """One namespace of the disk cache (see the module docstring): ``root`` None = :func:`default_cache_dir`,
    False = no disk cache (every value computed in memory); ``fmt`` one of :data:`EXTENSIONS`."""

    def __init__(self, root: str | os.PathLike | None | bool, namespace: str, version: int | str, fmt: str = "npz"):
        if fmt not in EXTENSIONS:
            raise ValueError(f"cache format must be one of {sorted(EXTENSIONS)}, got {fmt!r}")
        self.enabled = root is not False
        self.dir = (Path(root) if root not in (None, True, False) else default_cache_dir()) / namespace
        self.namespace, self.version, self.fmt = namespace, str(version), fmt

    # -- where -------------------------------------------------------------------------------------
    def digest(self, key: dict) -> str:
        return sha256_json({"namespace": self.namespace, "version": self.version, "key": key}, 32)

    def stem(self, key: dict) -> str:
        """The entry's file name without extension: ``key["name"]`` (when given, made file-safe) + the digest."""
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(key.get("name", "")))[:120].strip("._")
        return f"{name}-{self.digest(key)[:24]}" if name else self.digest(key)

    def path(self, key: dict) -> Path:
        """The entry's file (it may not exist)."""
        return self.dir / f"{self.stem(key)}.{EXTENSIONS[self.fmt]}"

    def record_path(self, key: dict) -> Path:
        """The file holding the entry's recorded size and content hash."""
        return self.dir / f"{self.stem(key)}.{EXTENSIONS[self.fmt]}.sha256"

    # -- the three operations ----------------------------------------------------------------------
    def load(self, key: dict, validate: Validator | None = None) -> Any | None:
        """The stored value for ``key`` when present, intact and accepted by ``validate``; else None (a refused
        entry is a one-line warning)."""
        if not self.enabled:
            return None
        with self._lock(key, fcntl.LOCK_SH):
            return self._read(key, validate)

    def save(self, key: dict, value: Any) -> bool:
        """Store ``value`` under ``key`` (atomically, with its content hash); False, with a warning, when the cache
        cannot be written."""
        if not self.enabled:
            return False
        with self._lock(key, fcntl.LOCK_EX):
            return self._write(key, value)

    def get_or_compute(self, key: dict, compute: Callable[[], Any], validate: Validator | None = None) -> Any:
        """The stored value for ``key`` (checked by ``validate``), or ``compute()`` stored and returned, under the
        entry's lock so that processes sharing the cache compute it once."""
        if not self.enabled:
            return compute()
        with self._lock(key, fcntl.LOCK_EX):
            value = self._read(key, validate)
            if value is None:
                value = compute()
                self._write(key, value)
            return value

    # -- inside ------------------------------------------------------------------------------------
    def _seal(self, key: dict, payload: bytes) -> str:
        h = hashlib.sha256()
        for part in (FORMAT, self.namespace, self.version, self.digest(key)):
            h.update(part.encode() + b"\0")
        h.update(payload)
        return h.hexdigest()

    def _refuse(self, path: Path, why: str) -> None:
        log.warning("cache entry %s %s; it is recomputed, not used", path, why)

    def _read(self, key: dict, validate: Validator | None) -> Any | None:
        path = self.path(key)
        try:
            payload = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):  # not there (or no cache folder at all): a miss
            return None
        except OSError as exc:
            self._refuse(path, f"cannot be read ({exc.strerror or exc.__class__.__name__})")
            return None
        try:
            record = json.loads(self.record_path(key).read_text())
            sealed, size = record["sha256"], record["size"]
        except (OSError, ValueError, KeyError, TypeError):
            self._refuse(path, "has no readable recorded content hash")
            return None
        if size != len(payload):
            self._refuse(path, f"is {len(payload)} bytes, {size} were written (truncated or edited)")
            return None
        if sealed != self._seal(key, payload):
            self._refuse(path, "does not match the content hash recorded when it was written (edited or corrupt)")
            return None
        try:
            value = _decode(self.fmt, payload)
        except Exception as exc:  # numpy, json and torch raise many types for bytes they cannot parse
            self._refuse(path, f"cannot be parsed ({exc.__class__.__name__})")
            return None
        problem = validate(value) if validate is not None else None
        if problem:
            self._refuse(path, f"holds {problem}")
            return None
        return value

    def _write(self, key: dict, value: Any) -> bool:
        path = self.path(key)
        try:
            payload = _encode(self.fmt, value)
            record = {"format": FORMAT, "namespace": self.namespace, "version": self.version, "key": key,
                      "size": len(payload), "sha256": self._seal(key, payload)}
            with atomic_path(path) as tmp:
                tmp.write_bytes(payload)
            with atomic_path(self.record_path(key)) as tmp:
                tmp.write_text(json.dumps(record, sort_keys=True, default=str) + "\n")
        except (OSError, ValueError, TypeError) as exc:  # read-only or full disk; a value JSON cannot hold (NaN)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
            log.warning("could not write cache entry %s (%s); the value is used from memory only", path, why)
            return False
        return True

    @contextlib.contextmanager
    def _lock(self, key: dict, mode: int) -> Iterator[None]:
        """A blocking flock on ``<entry>.lock`` (none where the folder cannot be written: nothing is stored there
        either). The kernel drops it when the holder exits, however it exits."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            lock = self.dir / f"{self.stem(key)}.{EXTENSIONS[self.fmt]}.lock"
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)  # a planted symlink is not followed
        except OSError:
            yield
            return
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock


def _encode(fmt: str, value: Any) -> bytes:
    buf = io.BytesIO()
    if fmt == "npz":
        np.savez(buf, **{k: np.asarray(v) for k, v in value.items()})
    elif fmt == "json":
        return (json.dumps(value, sort_keys=True, allow_nan=False) + "\n").encode()
    else:
        lazy.torch.save(value, buf)
    return buf.getvalue()


def _decode(fmt: str, payload: bytes) -> Any:
    if fmt == "npz":
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    if fmt == "json":
        return json.loads(payload, parse_constant=_no_constant)
    return lazy.torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def array_problem(value: Any, specs: dict[str, tuple[str, tuple, bool]]) -> str | None:
    """Check a dict of arrays: ``specs`` = {name: (dtype, shape, finite)}. ``dtype`` is a numpy dtype name
    ("float32", "bool") or a kind ("U" text, "f" any float); ``shape`` holds ints, None (any) or letters that must be
    the same size in every array ("N"); ``finite`` refuses NaN/inf. Returns the first problem as text, or None."""
    if not isinstance(value, dict):
        return f"a {type(value).__name__} where a table of arrays was expected"
    sizes: dict[str, int] = {}
    for name, (dtype, shape, finite) in specs.items():
        a = value.get(name)
        if not isinstance(a, np.ndarray):
            return f"no array {name!r}" if a is None else f"a {type(a).__name__} as {name!r}"
        if (a.dtype.kind if len(dtype) == 1 else a.dtype.name) != dtype:
            return f"{name!r} of dtype {a.dtype}, expected {dtype}"
        if a.ndim != len(shape):
            return f"{name!r} of shape {list(a.shape)}, expected {len(shape)} dimensions"
        for got, want in zip(a.shape, shape):
            size = sizes.setdefault(want, got) if isinstance(want, str) else want
            if size is not None and got != size:
                other = f" ({want} = {size} in the arrays before it)" if isinstance(want, str) else ""
                return f"{name!r} of shape {list(a.shape)}, expected {list(shape)}{other}"
        if finite and a.dtype.kind == "f" and not np.isfinite(a).all():
            return f"NaN or infinite values in {name!r}"
    return None

"""The one registry type: metric suites, judges, face-source kinds, baselines/trainers and prepare modes.

Each entry is declared once, as one line in its kind's table::

    SUITES = Registry("metric suite", "w2p_eval.suites", [
        Entry("identity", "w2p_eval.metrics.identity:SUITE", "Identity accuracy and embedding metrics."),
        ...])

``name`` is what users type, ``target`` a lazy "module:attr" (imported only when the entry is used), ``help``
one line shown by ``--help`` and the docs' tables, ``meta`` anything else the kind needs (read-only).
A :class:`Registry` is a read-only ``Mapping`` name -> target, so ``name in SUITES``, ``list(SUITES)`` and
:func:`w2p_eval.names.lookup` work on it; click choices (:meth:`Registry.names`), ``--help`` texts
(:meth:`Registry.help_text`) and the docs' Markdown tables (:meth:`Registry.markdown`) are generated from it.

Plugins: other installed packages add entries through the entry-point group named by the registry
(``w2p_eval.suites``, ``w2p_eval.judges``, ``w2p_eval.sources``, ``w2p_eval.baselines``); an entry point
``example_brightness = my_pkg:SUITE`` registers ``example_brightness``. Its help is the object's ``help``
attribute (or its docstring's first line), its metadata the object's ``registry_meta`` dict (e.g. the kind of
judge). A plugin that cannot be imported or whose name clashes with a built-in one is skipped with one
warning line naming its package; every other name still works. Light on purpose: importing this module
imports no torch/numpy (the CLI's ``--help`` builds its texts from it).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from importlib import metadata
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

from w2p_eval.errors import InputError
from w2p_eval.names import resolve, unknown

log = logging.getLogger("w2p_eval.plugins")


@dataclass(frozen=True)
class Entry:
    """One registered name: ``target`` "module:attr" (resolved on use), one-line ``help``, read-only ``meta``;
    ``package``: the distribution a plugin entry came from (None for built-ins)."""

    name: str
    target: str
    help: str
    meta: Mapping = field(default_factory=dict)
    package: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def load(self):
        """The registered object (its module imported now)."""
        return resolve(self.target)


class Registry(Mapping[str, str]):
    """Built-in entries of one kind plus the plugins of its entry-point ``group`` (read once per process).

    ``what`` names the kind in messages ("unknown metric suite 'x' (did you mean y?); available: ...");
    ``keep(entry) -> bool`` makes a registry of one sort out of shared entries (e.g. identity judges only).
    """

    def __init__(self, what: str, group: str | None, entries: Iterable[Entry], keep=None):
        self.what, self.group, self._keep = what, group, keep
        self._builtin = tuple(entries)
        names = [e.name for e in self._builtin]
        dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if dup is not None:
            raise ValueError(f"{what} {dup!r} registered twice")

    def entries(self, where=None) -> tuple[Entry, ...]:
        """Every entry (built-ins first, then plugins); ``where(entry) -> bool`` keeps some (e.g. by meta)."""
        plugins = plugin_entries(self.group, tuple(e.name for e in self._builtin)) if self.group else ()
        return tuple(e for e in self._builtin + plugins
                     if (self._keep is None or self._keep(e)) and (where is None or where(e)))

    def parse_list(self, value, example: str) -> tuple[str, ...]:
        """``"a,b"`` (or a list of names) -> ("a", "b"), the first the primary one (several judges of one
        evaluation). Non-names, an empty list, unknown names (with "did you mean") and repeats -> InputError;
        ``example`` is shown in the messages (e.g. ``dlib_resnet,faceres``)."""
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, (list, tuple)) or not all(isinstance(p, str) for p in parts):
            raise InputError(f"expected {self.what}s as a name, a comma-separated list of names or a list of names "
                             f"(e.g. {example}), got {str(value)[:60]!r}")
        names = [p.strip() for p in parts]
        if not names or not all(names):
            raise InputError(f"expected {self.what}s as a comma-separated list of names (e.g. {example}), got {value!r}")
        for name in names:
            if name not in self:
                raise InputError(unknown(self.what, name, self.names()))
        dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if dup is not None:
            raise InputError(f"expected distinct {self.what}s, got {dup!r} more than once in {value!r}")
        return tuple(names)

    def plus(self, *entries: Entry) -> "Registry":
        """A new registry with ``entries`` added (this one is never changed; tests register their models so)."""
        return Registry(self.what, self.group, self._builtin + entries, self._keep)

    def names(self, where=None) -> list[str]:
        """The registered names (click choices are made of them)."""
        return [e.name for e in self.entries(where)]

    def entry(self, name: str, where=None) -> Entry:
        """The entry called ``name``; an unknown name -> InputError with "did you mean" and the list."""
        for e in self.entries(where):
            if e.name == name:
                return e
        raise InputError(unknown(self.what, name, self.names(where)))

    def load(self, name: str, where=None):
        """The object registered as ``name`` (imported now); a plugin that fails to import is one line."""
        e = self.entry(name, where)
        try:
            return e.load()
        except Exception as exc:  # a plugin's import error: one line naming its package, never a traceback
            if e.package is None:
                raise
            raise InputError(f"plugin package {e.package!r} could not load {self.what} {name!r} "
                             f"({exc.__class__.__name__}: {exc})") from None

    def help_text(self, where=None, sep: str = "; ") -> str:
        """``"a (help of a); b (help of b)"`` for a click option's help."""
        return sep.join(f"{e.name} ({e.help.rstrip('.')})" for e in self.entries(where))

    def markdown(self, where=None, meta: str | None = None) -> str:
        """The docs' table of names: ``| name | what it is |`` (plus a ``meta`` column), one row per entry."""
        head = ["| name | what it is |" + (f" {meta} |" if meta else ""), "|---|---|" + ("---|" if meta else "")]
        rows = [f"| `{e.name}` | {e.help}{f' (plugin: {e.package})' if e.package else ''} |"
                + (f" {e.meta.get(meta, '')} |" if meta else "") for e in self.entries(where)]
        return "\n".join([*head, *rows])

    # the Mapping view: name -> "module:attr"
    def __getitem__(self, name: str) -> str:
        for e in self.entries():
            if e.name == name:
                return e.target
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.entries())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {self.names()})"


@functools.lru_cache(maxsize=None)  # a memo of a pure read: installed distributions do not change mid-command
def plugin_entries(group: str, builtin: tuple[str, ...]) -> tuple[Entry, ...]:
    """The entries installed packages declare in entry-point ``group``; each plugin object is imported here
    (for its help and metadata). Broken ones (import error, name clash) are one warning line and skipped."""
    out: list[Entry] = []
    for ep in metadata.entry_points(group=group):
        package = ep.dist.name if getattr(ep, "dist", None) is not None else ep.value.split(":")[0]
        if ep.name in builtin or any(e.name == ep.name for e in out):
            log.warning("plugin package %r: %s name %r clashes with one already registered; ignored", package,
                        group, ep.name)
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # any failure of a third-party import: one line, the other names still work
            log.warning("plugin package %r: %s name %r could not be imported (%s: %s); ignored", package, group, ep.name,
                        exc.__class__.__name__, str(exc).splitlines()[0] if str(exc) else "")
            continue
        doc = (getattr(obj, "help", None) or (obj.__doc__ or "").strip().split("\n")[0] or f"from {package}")
        meta = getattr(obj, "registry_meta", None)
        out.append(Entry(ep.name, ep.value, str(doc), dict(meta) if isinstance(meta, Mapping) else {}, package))
    return tuple(out)

"""The one registry type: metric suites, judges, face-source kinds, baselines/trainers and prepare modes.

Each built-in entry is declared once, in the module that defines the thing, as one module-level literal::

    # w2p_eval/metrics/geometry.py
    SUITE = GeometrySuite()
    REGISTER_SUITES = (Entry("geometry", "SUITE", "face-geometry ratio error under each landmark judge", order=150),)

and its kind's :class:`Registry` finds it without importing that module: ``Registry(..., packages=
("w2p_eval.metrics",), marker="REGISTER_SUITES")`` reads the ``.py`` files of the folders it owns (only those
whose text holds the marker), parses just the marker's statement (every argument an ``ast.literal_eval``
literal) and keeps the result for the process (:func:`declared_entries`). So adding a suite, judge, source
kind, baseline or prepare mode is its module and its test; no central list is edited. A declaration that is
not literal, has unknown keys or repeats a name is a :class:`DeclarationError` naming its file and line.

``name`` is what users type, ``target`` a lazy "module:attr" (imported only when the entry is used; in a
declaration a bare ``attr`` of the declaring module), ``help`` one line shown by ``--help`` and the docs'
tables, ``meta`` anything else the kind needs (read-only, literal), ``order`` where the entry stands in
``--help``, the docs' tables and the report (lower first; ties by name). A :class:`Registry` is a read-only
``Mapping`` name -> target, so ``name in SUITES``, ``list(SUITES)`` and :func:`w2p_eval.names.lookup` work on
it; click choices (:meth:`Registry.names`), ``--help`` texts (:meth:`Registry.help_text`) and the docs'
Markdown tables (:meth:`Registry.markdown`) are generated from it.

Plugins: other installed packages add entries through the entry-point group named by the registry
(``w2p_eval.suites``, ``w2p_eval.judges``, ``w2p_eval.sources``, ``w2p_eval.baselines``); an entry point
``example_brightness = my_pkg:SUITE`` registers ``example_brightness``. Its help is the object's ``help``
attribute (or its docstring's first line), its metadata the object's ``registry_meta`` dict (e.g. the kind of
judge). A plugin that cannot be imported or whose name clashes with a built-in one is skipped with one
warning line naming its package; every other name still works. Light on purpose: importing this module
imports no torch/numpy (the CLI's ``--help`` builds its texts from it).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import logging
import os
import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Iterator, Mapping

from w2p_eval.errors import InputError
from w2p_eval.names import resolve, unknown

log = logging.getLogger("w2p_eval.plugins")


@dataclass(frozen=True)
class Entry:
    """One registered name: ``target`` "module:attr" (resolved on use), one-line ``help``, read-only ``meta``;
    ``package``: the distribution a plugin entry came from (None for built-ins); ``order``: a built-in's place
    in its registry (lower first; plugins, None, follow the built-ins)."""

    name: str
    target: str
    help: str
    meta: Mapping = field(default_factory=dict)
    package: str | None = None
    order: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))

    def load(self):
        """The registered object (its module imported now)."""
        return resolve(self.target)


class Registry(Mapping[str, str]):
    """Built-in entries of one kind plus the plugins of its entry-point ``group`` (read once per process).

    The built-ins are the ``marker`` declarations of the modules in ``packages`` (dotted names of package
    folders, scanned on first use without importing them: :func:`declared_entries`), then ``entries``
    (tests add theirs so, through :meth:`plus`). ``what`` names the kind in messages ("unknown metric suite
    'x' (did you mean y?); available: ..."); ``keep(entry) -> bool`` makes a registry of one sort out of shared
    entries (e.g. identity judges only).
    """

    def __init__(self, what: str, group: str | None, entries: Iterable[Entry] = (), keep=None, *,
                 packages: Iterable[str] = (), marker: str | None = None):
        self.what, self.group, self._keep = what, group, keep
        self.packages, self.marker = tuple(packages), marker
        if self.packages and not (marker and marker.isidentifier()):
            raise ValueError(f"{what}: a registry that scans packages needs the marker name of its declarations")
        self._extra = tuple(entries)
        if not self.packages:
            self._check_distinct(self._extra)

    def _check_distinct(self, entries: tuple[Entry, ...]) -> tuple[Entry, ...]:
        names = [e.name for e in entries]
        dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
        if dup is not None:
            raise ValueError(f"{self.what} {dup!r} registered twice")
        return entries

    @functools.cached_property  # read once per registry (the scan itself is memoised per process)
    def builtin(self) -> tuple[Entry, ...]:
        """The declared entries (in order) and then the ones given to the constructor."""
        declared = declared_entries(self.packages, self.marker) if self.packages else ()
        return self._check_distinct(declared + self._extra)

    def entries(self, where=None) -> tuple[Entry, ...]:
        """Every entry (built-ins first, then plugins); ``where(entry) -> bool`` keeps some (e.g. by meta)."""
        builtin = self.builtin
        plugins = plugin_entries(self.group, tuple(e.name for e in builtin)) if self.group else ()
        return tuple(e for e in builtin + plugins
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
        return Registry(self.what, self.group, self._extra + entries, self._keep, packages=self.packages,
                        marker=self.marker)

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


class DeclarationError(ValueError):
    """A built-in declaration that cannot be read: ``<file>:<line>: <marker>: <what is wrong>``."""


_FIELDS = ("name", "target", "help", "meta", "order")  # Entry's arguments a declaration may give, in order
_LONGEST = 400  # lines a declaration statement may span


@functools.lru_cache(maxsize=None)  # a memo of a pure read: the package's own files do not change mid-command
def declared_entries(packages: tuple[str, ...], marker: str) -> tuple[Entry, ...]:
    """The entries declared as ``<marker> = (Entry(...), ...)`` at the top level of the ``.py`` files directly
    in the folders of ``packages``, sorted by (order, name). No module is imported: a file is read only when
    its text holds ``marker``, and only the marker's statement is parsed. Targets given as a bare ``attr`` are
    made "<declaring module>:attr". Malformed declarations and names declared twice -> DeclarationError."""
    found: list[Entry] = []
    where: dict[str, str] = {}
    needle = marker.encode()
    for package in packages:
        folder = package_folder(package)
        for name in sorted(n for n in os.listdir(folder) if n.endswith(".py")):
            path = folder / name
            with open(path, "rb") as f:
                data = f.read()
            if needle not in data:  # the cheap pre-filter: most files are never decoded or parsed
                continue
            module = package if path.stem == "__init__" else f"{package}.{path.stem}"
            for entry in parse_declaration(data.decode("utf-8"), marker, module, path):
                if entry.name in where:
                    raise DeclarationError(f"{path}: {marker}: {entry.name!r} is declared here and in "
                                           f"{where[entry.name]}")
                where[entry.name] = str(path)
                found.append(entry)
    return tuple(sorted(found, key=lambda e: (e.order, e.name)))


def package_folder(package: str) -> Path:
    """The folder of dotted ``package``, found without importing it (only its top-level package is looked up)."""
    top, _, rest = package.partition(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise DeclarationError(f"{package}: no such package to scan for declarations")
    folder = Path(list(spec.submodule_search_locations)[0]).joinpath(*rest.split(".") if rest else ())
    if not folder.is_dir():
        raise DeclarationError(f"{package}: no such package folder ({folder})")
    return folder


def parse_declaration(text: str, marker: str, module: str, path: Path) -> list[Entry]:
    """The entries of the one top-level ``<marker> = (Entry(...), ...)`` statement of ``text`` (none: [])."""
    starts = [i for i in _line_starts(text, marker) if _ASSIGN.match(text, i + len(marker))]
    if not starts:
        return []
    first = text.count("\n", 0, starts[0]) + 1
    if len(starts) > 1:
        raise DeclarationError(f"{path}:{first}: {marker} is assigned {len(starts)} times; declare it once")
    value = _statement(text[starts[0]:], path, first, marker).value
    if not isinstance(value, (ast.Tuple, ast.List)):
        raise DeclarationError(f"{path}:{first}: {marker}: expected a tuple of Entry(...) calls, "
                               f"got {ast.unparse(value)[:60]!r}")
    return [_entry(call, module, path, first + call.lineno - 1, marker) for call in value.elts]


_ASSIGN = re.compile(r"\s*(?::[^=\n]*)?=(?!=)")  # what follows the marker in ``MARKER = ...`` / ``MARKER: T = ...``


def _line_starts(text: str, marker: str) -> list[int]:
    """Offsets where ``marker`` starts a line of ``text``."""
    out, i = [], text.find(marker)
    while i >= 0:
        if i == 0 or text[i - 1] == "\n":
            out.append(i)
        i = text.find(marker, i + 1)
    return out


def _statement(tail: str, path: Path, first: int, marker: str) -> ast.Assign | ast.AnnAssign:
    """The statement at the start of ``tail``: parsed where its brackets close (counted roughly, then parsed to
    be sure; a bracket inside a string only costs more tries)."""
    lines = tail.splitlines(keepends=True)
    depth, rough = 0, True
    for n, line in enumerate(lines[:_LONGEST], 1):
        depth += sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")
        if rough and depth > 0 and n < len(lines):
            continue
        try:
            return ast.parse("".join(lines[:n])).body[0]
        except SyntaxError:
            rough = False  # the count was fooled (a bracket inside a string): try every following line
    raise DeclarationError(f"{path}:{first}: {marker}: not a complete Python statement within {_LONGEST} lines")


def _entry(call: ast.expr, module: str, path: Path, line: int, marker: str) -> Entry:
    """One ``Entry("name", "attr" or "module:attr", "help", {meta}, order=N)`` call, every argument a literal."""
    where = f"{path}:{line}: {marker}"
    func = getattr(call, "func", None)
    if not isinstance(call, ast.Call) or getattr(func, "id", getattr(func, "attr", None)) != "Entry":
        raise DeclarationError(f"{where}: expected Entry(...), got {ast.unparse(call)[:60]!r}")
    if len(call.args) > len(_FIELDS) or any(isinstance(a, ast.Starred) for a in call.args):
        raise DeclarationError(f"{where}: expected at most {len(_FIELDS)} plain arguments ({', '.join(_FIELDS)})")
    given = dict(zip(_FIELDS, call.args))
    for kw in call.keywords:
        if kw.arg not in _FIELDS or kw.arg in given:
            raise DeclarationError(f"{where}: unknown or repeated key {kw.arg or '**'!r}; "
                                   f"an Entry declares {', '.join(_FIELDS)}")
        given[kw.arg] = kw.value
    args = {}
    for key, node in given.items():
        try:
            args[key] = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError):
            raise DeclarationError(f"{where}: {key} must be a literal (read without importing the module), "
                                   f"got {ast.unparse(node)[:60]!r}") from None
    missing = [k for k in _FIELDS if k not in args and k != "meta"]
    if missing:
        raise DeclarationError(f"{where}: Entry lacks {', '.join(missing)}")
    name, target, help_, meta, order = (args["name"], args["target"], args["help"], args.get("meta", {}),
                                        args["order"])
    if not (isinstance(name, str) and name and isinstance(help_, str) and help_ and isinstance(target, str)
            and re.fullmatch(r"([\w.]+:)?\w+", target) and isinstance(meta, dict)
            and all(isinstance(k, str) for k in meta) and isinstance(order, (int, float))
            and not isinstance(order, bool)):
        raise DeclarationError(f"{where}: expected name and help as non-empty text, target as 'attr' or "
                               f"'module:attr', meta as a dict with text keys and order as a number, got "
                               f"{ast.unparse(call)[:80]!r}")
    return Entry(name, target if ":" in target else f"{module}:{target}", help_, meta, order=order)

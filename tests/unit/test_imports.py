"""Imports are read at the top of a module: no import circle among w2p_eval's modules, and an import inside a
function (outside cli/, whose verbs stay lazy so `w2p-eval --help` is light) only with a ``# lazy: <why>``
comment on its line or the line above (docs/architecture.md: a heavy backend chosen by name, the CLI's light
start-up, ...). Static (AST) checks: they read the source and import nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "w2p_eval"
REASON = "# lazy:"
NOT_YET: set[str] = set()  # files not held to the rule (none: every file outside cli/ is)
# Issue 26's target for the whole package is <= 20 explained function-level imports; lower this when one goes.
MAX_EXPLAINED = 13


def module_names() -> dict[str, Path]:
    """{dotted module name: file} for every module of the package (a package is its __init__.py)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_modules(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file (module level or in a function)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    cycles.append(sorted(group))
    return cycles


def function_imports(path: Path) -> list[tuple[int, bool, str]]:
    """(line, has a reason, text) of every import statement inside a function of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    seen = {}
    for fn in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and node.lineno not in seen:
                text = lines[node.lineno - 1]
                above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                seen[node.lineno] = REASON in text or above.startswith(REASON)
    return [(n, ok, lines[n - 1].strip()) for n, ok in sorted(seen.items())]


def held_files() -> list[Path]:
    """The package's files outside cli/ that the lazy-import rule holds (all but :data:`NOT_YET`)."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith("cli/") and rel not in NOT_YET:
            out.append(path)
    return out


def test_no_import_circle():
    known = module_names()
    edges = {name: imported_modules(name, path, known) for name, path in known.items()}
    assert import_cycles(edges) == []


def test_cycle_finder_finds_a_circle():
    """The checker itself: the circle this package had (data/folder <-> data/manifest) is found, and an
    import of a package's own sub-module from elsewhere is not one."""
    edges = {"a.folder": {"a.manifest", "a.layout"}, "a.manifest": {"a.folder"}, "a.layout": set(), "b": {"a.layout"}}
    assert import_cycles(edges) == [["a.folder", "a.manifest"]]
    assert import_cycles({"x": {"y"}, "y": {"z"}, "z": set()}) == []


def test_function_level_imports_say_why():
    unexplained, explained = [], 0
    for path in held_files():
        for line, ok, text in function_imports(path):
            if ok:
                explained += 1
            else:
                unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {text}")
    assert not unexplained, ("imports inside functions without a '# lazy: <why>' comment (move them to the "
                             "module's top, or say why they must wait):\n" + "\n".join(unexplained))
    assert explained <= MAX_EXPLAINED, f"{explained} function-level imports (each with a reason); at most {MAX_EXPLAINED}"


def test_function_import_reader_sees_reasons(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("import os\n\n\ndef f():\n    import dlib  # lazy: backend chosen by name\n"
                   "    # lazy: pyplot fixes the backend\n    import json\n    from x import y\n\n"
                   "class C:\n    def g(self):\n        import re\n")
    assert [(n, ok) for n, ok, _ in function_imports(src)] == [(5, True), (7, True), (8, False), (12, False)]


def test_unit_tests_read_no_shared_data():
    """Real data (../shared) is for tests/integration (marked, skipping with a reason when absent): a unit test
    that reads it would skip in a fresh clone and prove nothing there."""
    unit = Path(__file__).resolve().parent
    users = [p.name for p in sorted(unit.glob("*.py")) if p.name != Path(__file__).name
             and any(word in p.read_text(encoding="utf-8") for word in ("shared_path(", "SHARED_DATA", "shared_data"))]
    assert not users, f"unit tests reading ../shared (move them to tests/integration): {users}"

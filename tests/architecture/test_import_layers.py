"""The house holds: imports point down the layers only, and no module imports itself back.

Layers, bottom to top (``docs/architecture.md``)::

    trader.core
    trader.data | models | risk | gateways      (each only on core; not on each other)
    trader.engine
    trader.store
    trader.replay | trader.live | trader.tracking   (not on each other)
    trader.web | trader.optimize                 (web: store, core, and live.status only)
    trader.cli

Every import counts, typing-only ones (``if TYPE_CHECKING:``) included for the
direction; a cycle is checked over the imports that run.  There is no
exception list.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("trader", "gateways", "models", "risk")

# Rooms and their rank: a module may import only rooms of a lower rank, or its own room.
RANKS: dict[str, int] = {
    "trader.core": 0,
    "trader.data": 1, "models": 1, "risk": 1, "gateways": 1,
    "trader.engine": 2,
    "trader.store": 3,
    "trader.replay": 4, "trader.live": 4, "trader.tracking": 4,
    "trader.web": 5, "trader.optimize": 5,
    "trader.cli": 6,
}
# The dashboard reads; it never builds or drives a kernel. Of the rooms below it, it may
# import only these (the status snapshot reader of trader.live, nothing else of it).
WEB_MAY_IMPORT = ("trader.core", "trader.store", "trader.live.status", "trader.web")


def room(module: str) -> str | None:
    """The room (layer member) a module belongs to; None for ``trader`` itself."""
    for name in sorted(RANKS, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(path: Path, module: str) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, typing only) for every import of the project in a file."""
    tree = ast.parse(path.read_text(), str(path))
    typing_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for sub in node.body:
                for n in ast.walk(sub):
                    if hasattr(n, "lineno"):
                        typing_lines.add(n.lineno)
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.split(".")
                parent = parent if is_pkg else parent[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield name, node.lineno, node.lineno in typing_lines


def resolve(name: str, known: dict[str, Path]) -> str | None:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def test_every_module_lives_in_a_room() -> None:
    homeless = [m for m in modules() if m != "trader" and room(m) is None]
    assert homeless == [], f"modules outside the rooms of docs/architecture.md: {homeless}"


def test_imports_point_down_only() -> None:
    known = modules()
    wrong = []
    for mod, path in sorted(known.items()):
        mine = room(mod)
        if mine is None:
            continue
        for name, line, _typing in imports(path, mod):
            target = resolve(name, known)
            theirs = room(target) if target else None
            if theirs is None or theirs == mine:
                continue
            if RANKS[theirs] >= RANKS[mine]:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {mine} imports {target} "
                             f"({theirs}, not below it)")
    assert wrong == [], "imports that do not point down:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    known = modules()
    graph: dict[str, set[str]] = {m: set() for m in known}
    for mod, path in known.items():
        for name, _line, typing in imports(path, mod):
            target = resolve(name, known)
            # A package's import of its own submodules is how packages work, not a cycle.
            if target and target != mod and not typing and not target.startswith(mod + "."):
                graph[mod].add(target)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append([*stack[stack.index(t):], t])
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    """The rules above would catch a core module that reached up (the check can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from trader.engine.portfolio import Portfolio\n")
    found = list(imports(bad, "trader.core.bad"))
    assert ("trader.engine.portfolio", 1, False) in found
    assert RANKS[room("trader.engine.portfolio")] > RANKS[room("trader.core.bad")]


def test_the_dashboard_reads_only_the_store_and_the_status_snapshot() -> None:
    known = modules()
    bad = []
    for module, path in known.items():
        if room(module) != "trader.web":
            continue
        for name, line, _typing in imports(path, module):
            target = resolve(name, known) or name
            if not any(target == ok or target.startswith(ok + ".") for ok in WEB_MAY_IMPORT):
                bad.append(f"{path.relative_to(REPO)}:{line} imports {target}")
    assert bad == []
    assert any(room(m) == "trader.web" for m in known)  # the check sees the room

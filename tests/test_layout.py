"""The layout holds: which package may import which (README "Layout").

The import graph of bot/, ingest/ and storage/ is built from the source (every module
ast-parsed, every import resolved, also those inside functions); imports under
``if TYPE_CHECKING:`` are left out, as they never run.  Then:
- no cycle among our modules;
- bot/digest and bot/commands reach neither bot.slack, bot.sync nor ingest.lore;
- ingest imports nothing from bot or storage, storage nothing from bot;
- each outside library is imported from its one place (click from bot/cli/ only, …).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from storage.migrations import MIGRATIONS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "ingest", "storage")

# Outside library → the module prefixes allowed to import it.
OUTSIDE = {
    "click": ("bot.cli",),
    "sqlite_utils": ("storage",),
    "b4": ("ingest.lore", "ingest.b4rules"),
    "liblore": ("ingest.lore",),
    "openai": ("bot.digest.llm",),
    "slack_bolt": ("bot.slack",),
    "slack_sdk": ("bot.slack",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(tree: ast.AST, package: str) -> list[str]:
    """Every dotted name an import statement in ``tree`` names (``from a import b`` gives
    ``a.b`` and ``a``), skipping ``if TYPE_CHECKING:`` bodies."""
    names: list[str] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
        stack.extend(ast.iter_child_nodes(node))
    return names


def build_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module → our modules it imports, module → top-level outside packages it imports)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    ours: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        ours[name], outside[name] = set(), set()
        for imported in imported_names(tree, package):
            if imported in files and imported != name:
                ours[name].add(imported)
            elif imported.split(".")[0] not in PACKAGES:
                outside[name].add(imported.split(".")[0])
    return ours, outside


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for w in graph[todo.pop()] - seen:
            seen.add(w)
            todo.append(w)
    return seen


def under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


GRAPH, OUTSIDE_IMPORTS = build_graph()


def test_the_graph_sees_every_module_and_every_kind_of_import() -> None:
    assert len(GRAPH) >= 80
    assert sum(len(v) for v in GRAPH.values()) >= 200
    assert "bot.cli.store" in GRAPH["bot.cli"]  # module-level
    assert "bot.digest.llm" in GRAPH["bot.digest.summarise"]  # inside a function
    assert "bot.digest" in GRAPH["bot.commands.digest"]  # a package's __init__
    assert "bot.digest.summary" not in GRAPH["bot.digest.grounding"]  # TYPE_CHECKING only
    assert "click" in OUTSIDE_IMPORTS["bot.cli"]


def test_no_import_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]  # the checker works
    assert cycles(GRAPH) == []


def test_digest_and_commands_reach_neither_slack_nor_sync_nor_lore() -> None:
    checked = [m for m in GRAPH if under(m, "bot.digest", "bot.commands")]
    assert len(checked) >= 20
    bad = {
        m: sorted(
            r for r in reachable(GRAPH, m) if under(r, "bot.slack", "bot.sync", "ingest.lore")
        )
        for m in checked
    }
    assert {m: r for m, r in bad.items() if r} == {}


def test_layers_point_one_way() -> None:
    ingest = [m for m in GRAPH if under(m, "ingest")]
    storage = [m for m in GRAPH if under(m, "storage")]
    assert len(ingest) >= 10 and len(storage) >= 8
    assert {m: sorted(i for i in GRAPH[m] if under(i, "bot", "storage")) for m in ingest} == {
        m: [] for m in ingest
    }
    assert {m: sorted(i for i in GRAPH[m] if under(i, "bot")) for m in storage} == {
        m: [] for m in storage
    }


def test_each_outside_library_from_its_one_place() -> None:
    users = {
        lib: sorted(m for m, libs in OUTSIDE_IMPORTS.items() if lib in libs) for lib in OUTSIDE
    }
    assert all(users[lib] for lib in OUTSIDE), users  # each is used somewhere
    misplaced = {
        lib: [m for m in names if not under(m, *OUTSIDE[lib])] for lib, names in users.items()
    }
    assert {lib: m for lib, m in misplaced.items() if m} == {}


def test_migrations_are_defined_in_number_order() -> None:
    names = [m.name for m in MIGRATIONS._migrations]
    assert len(names) >= 4
    matches = [re.match(r"m(\d{3})_", n) for n in names]
    numbers = [int(m.group(1)) for m in matches if m is not None]
    assert len(numbers) == len(names), names
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)

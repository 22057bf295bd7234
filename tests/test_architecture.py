"""Folders are the architecture: imports go down the layers, never up, and no modules import each
other in a circle (at run time: imports under `if TYPE_CHECKING:` do not count). Read from the
source with `ast`, so a lazy import inside a function counts as much as one at the top."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "vlmsearch"
# Lowest first; a module may import its own layer and those below it. The training packages sit
# above what they learn from: the joint heads above the models, our VLM above the pipeline whose
# prompts it is trained on and the evaluation that ranks its preference pairs, the generator's
# fine-tune above both. A model trained here is served through the registry, which knows its
# module by name: no backend imports a training package.
LAYERS = (
    ("errors", "config", "records", "images", "features", "metrics", "atomic"),
    ("models",),
    ("stores", "knowledge"),
    ("pipeline",),
    ("joint",),
    ("ingest", "extract"),
    ("engine",),
    ("eval",),
    ("vlm",),
    ("finetune",),
    ("demo",),
    ("server",),
    ("cli", "__init__", "__main__"),
)
LEVEL = {name: n for n, names in enumerate(LAYERS) for name in names}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    out = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking(node):
            return
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("vlmsearch"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vlmsearch"):
            for alias in node.names:  # `from vlmsearch.stores import doctor` imports a module
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imports_of(path, known) if m in known and m != name} for name, path in known.items()}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, targets in graph().items():
        for target in targets:
            low, high = _top(module), _top(target)
            if target == "vlmsearch" or low == high:
                continue
            if LEVEL[high] > LEVEL[low]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that climb a layer:\n" + "\n".join(sorted(upward))


def test_no_import_circles():
    # A package's __init__ is its public face (it re-exports its modules): not a node of logic.
    edges = {m: {t for t in ts if not _is_package(t)} for m, ts in graph().items() if not _is_package(m)}
    circles, seen = [], set()

    def walk(node: str, path: list[str]) -> None:
        for target in sorted(edges.get(node, ())):
            if target in path:
                circle = path[path.index(target) :]
                if frozenset(circle) not in seen:
                    seen.add(frozenset(circle))
                    circles.append(" -> ".join([*circle, target]))
            elif len(path) < 8:
                walk(target, [*path, target])

    for start in sorted(edges):
        walk(start, [start])
    assert not circles, "import circles:\n" + "\n".join(circles)


def _is_package(module: str) -> bool:
    return (PACKAGE.parent / module.replace(".", "/") / "__init__.py").is_file()


@pytest.mark.parametrize("module", ["vlmsearch.models.bundled", "vlmsearch.models.registry"])
def test_backends_never_import_training_packages(module):
    assert not {t for t in graph()[module] if _top(t) in ("joint", "vlm", "finetune")}

"""Imports point down the layers of docs/design.md, never up.

Each module of the package is assigned a layer by its path; a module may import
(at module level or inside functions) only from its own layer or lower ones.
"""

import ast
from pathlib import Path

import catgrad

ROOT = Path(catgrad.__file__).parent

LAYERS = [  # bottom to top
    ("core", ["errors", "init", "core", "ops"]),
    ("calculus", ["calculus"]),
    ("learning", ["loss", "optim", "schedule", "step"]),
    ("compiler", ["compiler"]),
    ("run", ["files", "data", "train", "frontend", "draw", "plot", "export", "cli", "__main__", "__init__"]),
]
RANK = {top: i for i, (_, tops) in enumerate(LAYERS) for top in tops}


def layer_of(module: str) -> int:
    """``module`` is a dotted name inside catgrad (``core.diagram``)."""
    top = module.split(".")[0]
    return RANK[top]


def imports_of(path: Path):
    """(line, dotted target inside catgrad) for every import in the file at ``path``."""
    package = list(path.relative_to(ROOT).parts[:-1])  # the package a relative import starts from
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}".strip(".") for a in node.names]
                for n in names:
                    yield node.lineno, n
            elif node.module and node.module.startswith("catgrad."):
                yield node.lineno, node.module[len("catgrad."):]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("catgrad."):
                    yield node.lineno, a.name[len("catgrad."):]


def test_every_module_has_a_layer():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        assert rel.parts[0] in RANK, f"{rel} is in no layer: add it to LAYERS in this test and to docs/design.md"


def test_imports_point_down():
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        mine = layer_of(rel.parts[0])
        for line, target in imports_of(path):
            if not target or target.split(".")[0] not in RANK:
                continue
            if layer_of(target) > mine:
                bad.append(f"{path.relative_to(ROOT.parent)}:{line} imports catgrad.{target} (a higher layer)")
    assert not bad, "\n".join(bad)

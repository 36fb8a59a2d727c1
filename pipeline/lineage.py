"""Which project code a module runs, and a fingerprint of it.

`closure("pipeline.train")` follows every `import` of a project module, at module
level or inside a function, transitively. It is what a DVC stage must list in its
`deps` (tests/test_dag.py holds every pipeline file to it), and `code_digest` of it is part of
every key that says "same inputs, same result": a sweep trial's, a kept training's,
the check stage's. Change the code and the key changes with it.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "pipeline"
ROOT = Path(__file__).resolve().parent


def module_file(module: str) -> Path:
    parts = module.split(".")
    path = ROOT.parent.joinpath(*parts)
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


@cache
def direct_imports(module: str) -> frozenset[str]:
    """The project modules `module` imports anywhere in its source."""
    tree = ast.parse(module_file(module).read_text(), str(module_file(module)))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from pipeline import tracking` imports the module pipeline.tracking
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(name for name in found
                     if name.split(".")[0] == PACKAGE and module_file(name).is_file())


def closure(module: str) -> list[str]:
    """`module` and every project module it imports, transitively (package inits too)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        parts = current.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages
        todo += direct_imports(current)
    return sorted(seen)


def files(module: str) -> list[str]:
    """The closure as paths relative to the project root, as dvc.yaml lists them."""
    return sorted(module_file(m).relative_to(ROOT.parent).as_posix() for m in closure(module))


def code_digest(module: str) -> str:
    """A hash of every file in the closure: the code that produces a result."""
    digest = hashlib.sha256()
    for path in files(module):
        digest.update(path.encode() + b"\0" + (ROOT.parent / path).read_bytes() + b"\0")
    return digest.hexdigest()[:16]

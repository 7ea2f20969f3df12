"""The architecture as a test: every module belongs to one part, and some parts never reach others.

The rules are checked on the source, transitively, counting what Python really executes: importing
``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py`` too, and a function-level import counts like
a top-level one (it runs when the function does). Only ``if TYPE_CHECKING:`` blocks are left out.
A subprocess test then checks the one rule that matters most at run time on a real interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "sruscale"

#: part -> module prefixes (dotted, below ``sruscale``; "" is the package itself). Every module of the
#: package must fall in exactly one part: a new module is assigned here or this test fails.
PARTS: dict[str, tuple[str, ...]] = {
    "pixels": ("", "_version", "_config", "_defaults", "_fs", "_proc", "_reduction", "_claims", "_checks", "_lazy",
               "errors", "input_quality", "color", "resize", "image", "_png", "device"),
    "models": ("models",),
    "model files": ("weights",),
    "degradations": ("degradations",),
    "metrics": ("metrics",),
    "losses": ("losses",),
    "evaluation": ("evaluation",),
    "service": ("api", "batch", "upscaling", "tiling", "distributed"),
    "training": ("training", "data"),
    "CLI": ("cli", "__main__"),
}  # fmt: skip

#: (part, parts it never reaches, why)
NEVERS: list[tuple[str, tuple[str, ...], str]] = [
    ("pixels", ("models", "model files", "metrics", "losses", "evaluation", "service", "training", "CLI"),
     "the base layer"),
    ("models", ("model files", "training", "evaluation", "CLI"), "architectures only: no files, no trainer"),
    ("metrics", ("models", "losses", "evaluation", "training", "CLI"), "plain functions of images"),
    ("losses", ("evaluation", "training", "CLI"), "plain functions of tensors"),
    ("degradations", ("models", "model files", "service", "training", "evaluation", "CLI"),
     "data generation beside resize"),
    ("service", ("training", "evaluation", "CLI"), "upscaling imports no trainer or evaluation"),
    ("model files", ("training", "evaluation", "CLI"), "reading and resolving model files"),
    ("evaluation", ("training", "CLI"), "scoring"),
    ("training", ("CLI",), "the library never imports the CLI"),
]  # fmt: skip


def _name(path: Path) -> str:
    parts = path.relative_to(PKG).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_name(p): p for p in sorted(PKG.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)
    return out


def _executed(target: str) -> set[str]:
    """Modules of the package that importing ``target`` (dotted, maybe not a module) runs directly."""
    parts = target.split(".") if target else []
    out = {""}
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        if name in MODULES:
            out.add(name)
    return out


@cache
def lazy_exports(package: str) -> dict[str, str]:
    """A package's ``_EXPORTS`` table (public name -> submodule its ``__getattr__`` imports), or {}."""
    if package not in MODULES or not _is_package(package):
        return {}
    for node in ast.parse(MODULES[package].read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "_EXPORTS" for t in node.targets):
            table = ast.literal_eval(node.value)
            return {k: f"{package}.{v}".lstrip(".") for k, v in table.items()}
    return {}


@cache
def direct_imports(name: str) -> frozenset[str]:
    """Modules executed by the import statements of module ``name`` (and its own parent packages)."""
    path = MODULES[name]
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = _executed(package)
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if not node.module or not (node.module == "sruscale" or node.module.startswith("sruscale.")):
                    continue
                base = node.module.removeprefix("sruscale").lstrip(".")
            else:
                up = package.split(".") if package else []
                up = up[: len(up) - node.level + 1]
                base = ".".join([*up, *(node.module.split(".") if node.module else [])])
            found |= _executed(base)
            for alias in node.names:  # `from pkg import submodule`, or a name its __getattr__ imports
                sub = f"{base}.{alias.name}".lstrip(".")
                sub = sub if sub in MODULES else lazy_exports(base).get(alias.name, "")
                if sub in MODULES:
                    found |= _executed(sub)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "sruscale" or alias.name.startswith("sruscale."):
                    found |= _executed(alias.name.removeprefix("sruscale").lstrip("."))
    found.discard(name)
    return frozenset(found)


@cache
def reached(name: str) -> frozenset[str]:
    seen: set[str] = set()
    stack = [name]
    while stack:
        for dep in direct_imports(stack.pop()):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    seen.discard(name)
    return frozenset(seen)


def part_of(name: str) -> str:
    hits = [
        (len(prefix), part)
        for part, prefixes in PARTS.items()
        for prefix in prefixes
        if name == prefix or (prefix and name.startswith(prefix + "."))
    ]
    assert hits, f"sruscale.{name} belongs to no part: add it to PARTS in {Path(__file__).name}"
    return max(hits)[1]


def test_every_module_has_a_part() -> None:
    for name in MODULES:
        part_of(name)


def _path(start: str, goal: set[str]) -> list[str]:
    """One import chain from ``start`` to a module in ``goal`` (for the failure message)."""
    prev: dict[str, str] = {}
    queue = [start]
    while queue:
        cur = queue.pop(0)
        for dep in sorted(direct_imports(cur)):
            if dep in prev or dep == start:
                continue
            prev[dep] = cur
            if dep in goal:
                chain = [dep]
                while chain[-1] != start:
                    chain.append(prev[chain[-1]])
                return [f"sruscale.{m}".rstrip(".") for m in reversed(chain)]
            queue.append(dep)
    return []


@pytest.mark.parametrize(("part", "never", "why"), NEVERS, ids=[n[0] for n in NEVERS])
def test_nevers(part: str, never: tuple[str, ...], why: str) -> None:
    bad: list[str] = []
    for name in MODULES:
        if part_of(name) != part:
            continue
        hit = {m for m in reached(name) if part_of(m) in never}
        if hit:
            bad.append(" -> ".join(_path(name, hit)))
    assert not bad, f"{part} ({why}) must not reach {', '.join(never)}:\n" + "\n".join(bad)


def test_the_checker_sees_lazy_and_package_imports() -> None:
    """The rules can fail: known edges through a function-level import and a package ``__init__``."""
    assert "weights._onnx" in reached("cli.upscale")  # a function-level import
    assert "weights._resolve" in direct_imports("batch")  # `from .weights import load_model` (lazy __getattr__)
    assert "models" in reached("weights._resolve")
    assert "cli" in direct_imports("cli.upscale")  # its own package's __init__ runs first
    assert "models" not in reached("weights._files")


def test_import_metrics_leaves_the_model_zoo_unloaded() -> None:
    code = (
        "import sys, sruscale.metrics\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('sruscale.models', 'sruscale.losses',"
        " 'sruscale.evaluation', 'sruscale.weights._resolve')))\n"
        "print(bad)\n"
        "assert not bad, bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr

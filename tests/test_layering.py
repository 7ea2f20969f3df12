"""Import layering, checked on the source: low layers never reach up (no tautologies: each rule names modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "sruscale"


def sruscale_imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, as dotted names below ``sruscale`` ("" = the package)."""
    here = path.relative_to(PKG).with_suffix("").parts[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and (node.module == "sruscale" or node.module.startswith("sruscale.")):
                    base = node.module.removeprefix("sruscale").lstrip(".")
                else:
                    continue
            else:
                parts = list(here[: len(here) - node.level + 1])
                base = ".".join([*parts, *(node.module.split(".") if node.module else [])])
            if base in ("", *here) or not node.module:
                found.update(f"{base}.{a.name}".lstrip(".") for a in node.names)  # from .. import x
            else:
                found.add(base)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("sruscale.") for a in node.names if a.name.startswith("sruscale"))
    return found


def files(sub: str) -> list[Path]:
    return sorted((PKG / sub).rglob("*.py"))


@pytest.mark.parametrize("path", files("degradations"), ids=lambda p: p.name)
def test_degradations_sit_beside_resize(path: Path) -> None:
    """degradations use only errors/_config/_fs/_proc/_version/image/resize/color: never the package ``__init__``
    (whose public API pulls in the model zoo) nor models, loading or training."""
    allowed = ("errors", "_config", "_fs", "_proc", "_version", "image", "resize", "color", "degradations")
    bad = {m for m in sruscale_imports(path) if not m.startswith(allowed)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", files("models"), ids=lambda p: p.name)
def test_models_know_no_files(path: Path) -> None:
    """Architectures only: no weights manifest, checkpoint format, converters or loaders."""
    forbidden = ("weights", "checkpoint", "convert", "loading", "api", "training", "cli")
    bad = {m for m in sruscale_imports(path) if m.startswith(forbidden)}
    assert not bad, f"{path.name} imports {sorted(bad)}"

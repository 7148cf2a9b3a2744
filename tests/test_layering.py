"""The package layering (docs/architecture.md), checked on every module's imports, lazy ones included.

Imports are read with ``ast`` (nothing is imported), so an import inside a function counts as much
as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("encoders", "abtest", "dashboard", "feature_repo", "bench")
#: Script folders (no ``__init__.py``, nothing imports them): harnesses on top of everything, which may
#: drive a command line in-process (``bench/train_homedepot.py`` times ``searchsage train`` itself).
SCRIPTS = ("bench",)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` counts as ``a.b`` and ``a.b.c``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES: dict[str, set[str]] = {
    _module_name(p): _imports(p)
    for pkg in PACKAGES
    for p in sorted((ROOT / pkg).rglob("*.py"))
    if "__pycache__" not in p.parts
}


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(importer: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{mod} imports {imp}" for mod, imps in MODULES.items() if _within(mod, importer)
                  for imp in imps if any(_within(imp, f) for f in forbidden))


def _cli_package(module: str) -> str | None:
    """The package whose command line ``module`` is (None when it is not a CLI module)."""
    if _within(module, "encoders.cli"):
        return "encoders.cli"
    parts = module.split(".")
    if parts[-1] == "cli" and len(parts) > 1:
        return ".".join(parts[:-1])
    return None


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "encoders" and len(parts) > 2 else parts[0]


def test_the_scan_sees_every_package_and_lazy_imports() -> None:
    assert {m.split(".")[0] for m in MODULES} == set(PACKAGES)
    # a lazy import inside a function is seen
    assert "encoders.relevance.rerank" in MODULES["encoders.cli.feast_commands"]


def test_model_does_not_import_eval() -> None:
    assert _violations("encoders.model", ("encoders.eval",)) == []


def test_runtime_imports_neither_serving_nor_torch() -> None:
    assert _violations("encoders.runtime", ("encoders.serving", "torch", "transformers")) == []


@pytest.mark.parametrize("upper", ["encoders.relevance", "encoders.serving", "abtest", "dashboard"])
def test_featurestore_does_not_reach_up(upper: str) -> None:
    assert _violations("encoders.featurestore", (upper,)) == []


def test_encoders_never_imports_abtest_or_dashboard() -> None:
    assert _violations("encoders", ("abtest", "dashboard")) == []


def test_no_package_imports_another_packages_cli() -> None:
    assert not (ROOT / "bench" / "__init__.py").exists()  # scripts, not a package
    bad = sorted(f"{mod} imports {imp}" for mod, imps in MODULES.items() for imp in imps
                 if (cli := _cli_package(imp)) is not None and _package(mod) != _package(cli)
                 and not _within(mod, cli) and _package(mod) not in SCRIPTS)
    assert bad == []


def test_the_cli_rule_would_catch_the_old_loop() -> None:
    """``abtest.cli`` importing ``encoders.cli.main`` (as it did) is what the rule forbids."""
    cli = _cli_package("encoders.cli.main")
    assert cli == "encoders.cli" and _package("abtest.cli") != _package(cli)

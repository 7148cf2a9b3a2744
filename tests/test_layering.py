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


def _violations(importer: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    """``mod imports imp`` for every module of ``importer`` importing one of ``forbidden`` (or a module
    inside one), except what lies inside ``allowed``."""
    return sorted(f"{mod} imports {imp}" for mod, imps in MODULES.items() if _within(mod, importer)
                  for imp in imps if any(_within(imp, f) for f in forbidden)
                  and not any(_within(imp, a) for a in allowed))


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
    assert {"encoders.redis_records.codec", "encoders.localredis.server", "encoders.ranking.ranker"} <= set(MODULES)


def test_model_does_not_import_eval() -> None:
    assert _violations("encoders.model", ("encoders.eval",)) == []


def test_runtime_imports_neither_serving_nor_torch() -> None:
    assert _violations("encoders.runtime", ("encoders.serving", "torch", "transformers")) == []


# --- the Redis / Feast stack, bottom up: redis_records < localredis, featurestore < ranking < relevance ---
RECORDS, CONTRACT = "encoders.redis_records", "encoders.featurestore.contract"
#: What sits above the records layer (the Feast plugin, the dev servers, the ranker and their users).
ABOVE_RECORDS = ("encoders.featurestore", "encoders.localredis", "encoders.ranking", "encoders.relevance",
                 "encoders.serving", "encoders.cli", "encoders.demo", "abtest", "dashboard")


def test_the_records_layer_imports_no_feast_and_nothing_above_it_but_the_contract() -> None:
    """Feast's Redis records without Feast: serving and other readers load no Feast through it."""
    assert _violations(RECORDS, ("feast", *ABOVE_RECORDS), allowed=(CONTRACT,)) == []


def test_the_contract_is_stdlib_only_and_its_package_init_imports_nothing() -> None:
    """The records layer may import the contract only because importing it loads nothing else."""
    import sys

    assert {i for i in MODULES[CONTRACT] if i.split(".")[0] not in sys.stdlib_module_names} == set()
    assert MODULES["encoders.featurestore"] == set()


def test_the_local_servers_sit_on_the_records_layer_only() -> None:
    assert _violations("encoders.localredis", ("feast", *(u for u in ABOVE_RECORDS if u != "encoders.localredis"))) == []


def test_production_code_never_imports_the_local_servers() -> None:
    """Only the command line (``searchsage redis``), the demo, tests and benchmarks start servers."""
    users = ("encoders.localredis", "encoders.cli", "encoders.demo")
    bad = sorted(f"{mod} imports {imp}" for mod, imps in MODULES.items() for imp in imps
                 if _within(imp, "encoders.localredis") and not any(_within(mod, u) for u in users)
                 and _package(mod) not in SCRIPTS)
    assert bad == []


def test_serving_reads_the_records_without_feast() -> None:
    assert _violations("encoders.serving", ("feast", "encoders.featurestore.online_store",
                                            "encoders.featurestore.engine", "encoders.ranking")) == []


@pytest.mark.parametrize("upper", ["encoders.ranking", "encoders.relevance", "encoders.serving", "encoders.localredis",
                                   "abtest", "dashboard"])
def test_featurestore_does_not_reach_up(upper: str) -> None:
    assert _violations("encoders.featurestore", (upper,)) == []


@pytest.mark.parametrize("upper", ["encoders.relevance", "encoders.serving", "encoders.localredis", "encoders.cli",
                                   "abtest", "dashboard"])
def test_ranking_does_not_reach_up(upper: str) -> None:
    """The ranker sits on the Feast plugin; rerankers (the relevance student) plug in from above."""
    assert _violations("encoders.ranking", (upper,)) == []


def test_the_records_rule_would_catch_a_feast_import() -> None:
    MODULES["encoders.redis_records._probe"] = {"feast.value_type", "encoders.featurestore.contract"}
    try:
        assert _violations(RECORDS, ("feast", *ABOVE_RECORDS), allowed=(CONTRACT,)) == [
            "encoders.redis_records._probe imports feast.value_type"]
    finally:
        del MODULES["encoders.redis_records._probe"]


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


def test_the_export_options_import_nothing_heavy() -> None:
    """``searchsage export`` builds its flags from ``ExportOptions`` without importing torch or onnx."""
    import sys

    assert {i for i in MODULES["encoders.export.config"] if i.split(".")[0] not in sys.stdlib_module_names} == set()

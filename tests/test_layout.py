"""The import direction of hwprof's stages (and of the searcher plugins).

Every ``import`` of an ``hwprof`` module, at module level or inside a function,
in every file under ``hwprof/<package>/`` and ``searchers/``, is checked
against :data:`ALLOWED`: the data flows spaces → artifacts → devices → measure
→ tables → predictors → latency → cli, and a stage imports only stages before
it. A new package under ``hwprof/`` needs a rule here; a new violation fails,
naming the file and the import; a violation listed in :data:`KNOWN_VIOLATIONS`
that is gone fails too, so the list stays the current truth.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hwprof

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hwprof"

#: Public names of the top-level package (``from hwprof import X`` / ``hwprof.X``).
PUBLIC = {f"hwprof.{name}" for name in getattr(hwprof, "__all__", ())} | {"hwprof"}

#: package (a folder under hwprof/, "searchers", or a top-level module) → hwprof modules it may import
#: (a name allows itself and everything below it; "hwprof" alone allows only ``import hwprof``; "hwprof.*" anything).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "spaces": {"hwprof.errors", "hwprof.spaces"},
    "artifacts": {"hwprof.errors", "hwprof.spaces", "hwprof.artifacts"},
    # a device runs model files and never knows about search spaces
    "devices": {"hwprof.errors", "hwprof.artifacts.record", "hwprof.devices", "hwprof.__version__"},
    "measure": {"hwprof.errors", "hwprof.spaces", "hwprof.artifacts", "hwprof.devices", "hwprof.measure"},
    "tables": {"hwprof.errors", "hwprof.spaces", "hwprof.measure", "hwprof.tables"},
    "predictors": {
        "hwprof.errors",
        "hwprof.spaces",
        "hwprof.measure",
        "hwprof.tables",
        "hwprof.predictors",
        "hwprof.__version__",
    },
    "latency": {"hwprof.errors", "hwprof.spaces", "hwprof.tables", "hwprof.predictors", "hwprof.latency"},
    # kernel campaigns and regressors: beside the predictors (a device comes in as an object, never imported)
    "kernels": {
        "hwprof.errors",
        "hwprof.spaces",
        "hwprof.artifacts",
        "hwprof.measure",
        "hwprof.predictors",
        "hwprof.kernels",
        "hwprof.__version__",
    },
    "testing": {"hwprof.errors", "hwprof.artifacts", "hwprof.devices", "hwprof.testing"},
    "cli": {"hwprof.*"},  # the CLI wires every stage together
    "__init__": {"hwprof.*"},  # the public API re-exports
    "searchers": PUBLIC | {"hwprof.errors", "hwprof.spaces", "hwprof.latency", "hwprof.tables"},
}

#: (file relative to the repository, imported module) pairs that break ALLOWED today.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


def _package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    if rel.parts[0] == "searchers":
        return "searchers"
    inner = rel.relative_to("hwprof")
    return inner.parts[0] if len(inner.parts) > 1 else inner.stem


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def hwprof_imports(path: Path) -> list[str]:
    """Every hwprof module (or ``hwprof.<public name>``) that ``path`` imports, anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = _module_name(path).split(".")
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name == "hwprof" or a.name.startswith("hwprof.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here if is_pkg else here[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module == "hwprof":  # from hwprof import X: X is a subpackage or a public name
                out += [f"hwprof.{a.name}" for a in node.names]
            elif module.startswith("hwprof."):
                out.append(module)
    return out


def _allowed(name: str, rules: set[str]) -> bool:
    return any(r == "hwprof.*" or name == r or (r != "hwprof" and name.startswith(r + ".")) for r in rules)


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "searchers").rglob("*.py"))


def _violations() -> set[tuple[str, str]]:
    found = set()
    for path in _files():
        rules = ALLOWED[_package_of(path)]
        for name in hwprof_imports(path):
            if not _allowed(name, rules):
                found.add((path.relative_to(ROOT).as_posix(), name))
    return found


def test_every_package_has_a_rule():
    packages = {_package_of(p) for p in _files()}
    assert packages <= set(ALLOWED), (
        f"no import rule for {sorted(packages - set(ALLOWED))}: add its allowed imports to ALLOWED in {__file__}"
    )


def test_the_scan_sees_imports_inside_functions_and_relative_ones(tmp_path):
    probe = PACKAGE / "devices" / "local.py"  # imports hwprof.artifacts.record at module level
    assert "hwprof.artifacts.record" in hwprof_imports(probe)
    assert any(n.startswith("hwprof.") for p in (ROOT / "searchers").glob("*.py") for n in hwprof_imports(p))


def test_imports_follow_the_data_flow():
    new = sorted(_violations() - KNOWN_VIOLATIONS)
    assert not new, "imports against the stage order (file, module):\n" + "\n".join(f"  {f}: {m}" for f, m in new)


@pytest.mark.parametrize("stage", ["devices"])
def test_devices_never_import_spaces(stage):
    names = {n for p in (PACKAGE / stage).rglob("*.py") for n in hwprof_imports(p)}
    assert not {n for n in names if _allowed(n, {"hwprof.spaces", "hwprof.measure", "hwprof.tables"})}

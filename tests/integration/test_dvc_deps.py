"""dvc.yaml's deps cannot drift from the code: every musicrec module a stage imports is among its deps.

For each stage, the script in its ``cmd`` is parsed (not run) and every ``import`` of a ``musicrec``
module, at any depth (including imports inside functions), is followed through the package. The two
registries import their entries by name: a module that imports the resolver (``model_class``,
``get_adapter``) is taken to import every registered model / source adapter. Each module file reached
must be a dep of the stage, itself or through a folder it lies in; otherwise a code change could leave
``dvc repro`` thinking nothing changed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
# a foreach stage (train@<model>, ...) is checked once, through its `do` template
STAGES = {name: spec.get("do", spec) for name, spec in
          yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"].items()}


def module_file(name: str) -> Path | None:
    """The file of module ``name`` under src/ (a package's ``__init__.py``), or None."""
    base = SRC.joinpath(*name.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.is_file():
            return p
    return None


def registered_modules() -> dict[tuple[str, str], set[str]]:
    """``(module, resolver) -> the modules it imports by name``, for the model and source registries."""
    from musicrec.ingest import SOURCES
    from musicrec.models import MODELS

    return {("musicrec.models", "model_class"): {s.implementation.partition(":")[0] for s in MODELS.values()},
            ("musicrec.ingest", "get_adapter"): {s.adapter for s in SOURCES.values()}}


DYNAMIC = registered_modules()


def imported_modules(path: Path) -> set[str]:
    """The musicrec modules ``path`` imports anywhere in its body (parents included: importing a.b runs a)."""
    found: set[str] = set()
    pkg = path.relative_to(SRC).with_suffix("").parts if path.is_relative_to(SRC) else ()
    if pkg and pkg[-1] == "__init__":
        pkg = pkg[:-1]
    elif pkg:
        pkg = pkg[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                   for stmt in block.body for n in ast.walk(stmt)}  # annotations only: never run
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*pkg[: len(pkg) - node.level + 1], *([base] if base else [])])
            names = [base] + [f"{base}.{a.name}" for a in node.names]
            for a in node.names:
                names.extend(DYNAMIC.get((base, a.name), ()))
        for n in names:
            parts = n.split(".")
            if parts[0] != "musicrec":
                continue
            for i in range(1, len(parts) + 1):
                if module_file(".".join(parts[:i])) is not None:
                    found.add(".".join(parts[:i]))
    return found


def closure(script: Path) -> set[Path]:
    seen: set[str] = set()
    todo = sorted(imported_modules(script))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(imported_modules(module_file(name)) - seen)
    return {module_file(n) for n in seen}


def stage_script(cmd: str) -> Path:
    m = re.search(r"python\s+(stages/\S+\.py)", " ".join(cmd.split()))
    assert m, f"stage cmd runs no stages/*.py script: {cmd!r}"
    return ROOT / m.group(1)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_imported_module_is_a_dep(stage: str) -> None:
    spec = STAGES[stage]
    script = stage_script(spec["cmd"])
    deps = [ROOT / d for d in spec.get("deps", []) if "${" not in d]
    assert script in deps, f"{stage}: its script {script.relative_to(ROOT)} is not among its deps"
    modules = closure(script)
    assert modules, f"{stage}: found no musicrec import in {script.name}"
    missing = sorted(str(m.relative_to(ROOT)) for m in modules
                     if not any(m == d or d in m.parents for d in deps))
    assert not missing, f"dvc.yaml stage {stage!r} imports modules that are not among its deps: {missing}"


def test_the_import_walk_follows_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The checker itself: a lazy import inside a function is found, a third-party one is not."""
    script = tmp_path / "s.py"
    script.write_text("import os\n\ndef main():\n    from musicrec.config import load_params\n    import numpy\n")
    assert imported_modules(script) == {"musicrec", "musicrec.config"}
    script.write_text("from musicrec.models import model_class\n")
    assert "musicrec.models.mf" in imported_modules(script)

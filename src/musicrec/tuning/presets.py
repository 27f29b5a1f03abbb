"""Presets: tuned ``params.yaml`` values per dataset, applied with ``dvc exp run -S key=value ...``.

A preset is ``params/presets/<name>.yaml``: a partial ``params.yaml`` (same nesting) holding
only the values that differ, e.g. ``data.source`` and the tuned ``train.<model>`` keys. It is
read as hostile input like ``params.yaml`` (:func:`musicrec.params_file.read_params_file`)
and validated against the schema merged over ``params.yaml``: an unknown key or a bad value
is a :class:`~musicrec.params_file.ParamsError` naming the preset file and the key.
``make exp PRESET=<name>`` runs ``dvc exp run`` with :func:`set_args` of it, so that a tuned
result is a normal DVC experiment.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from musicrec.params_file import ParamsError, read_params_file

PRESETS_DIR = Path("params/presets")


def preset_path(name_or_path: str | Path, root: Path | str = ".") -> Path:
    """``params/presets/<name>.yaml`` under ``root``, or the path itself when it names a file."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or len(p.parts) > 1:
        return p if p.is_absolute() else Path(root) / p
    return Path(root) / PRESETS_DIR / f"{p}.yaml"


def available(root: Path | str = ".") -> list[str]:
    return sorted(p.stem for p in (Path(root) / PRESETS_DIR).glob("*.yaml"))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted leaf keys of a nested mapping (``{"train": {"als": {"alpha": 5}}}`` -> ``{"train.als.alpha": 5}``)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def merge(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``base`` with the dotted ``values`` set (a deep copy; missing parents are created)."""
    out = copy.deepcopy(base)
    for dotted, v in values.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                node[p] = {}
            node = node[p]
        node[leaf] = copy.deepcopy(v)
    return out


def _unknown_keys(values: dict[str, Any]) -> list[str]:
    """Dotted keys of ``values`` that are no key of the params schema."""
    from pydantic import BaseModel

    from musicrec.config import Params

    bad = []
    for dotted in values:
        model: Any = Params
        for part in dotted.split("."):
            fields = getattr(model, "model_fields", None)
            if fields is None or part not in fields:
                bad.append(dotted)
                break
            ann = fields[part].annotation
            model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return bad


def load_preset(name_or_path: str | Path, *, params_path: Path | str = "params.yaml",
                root: Path | str = ".") -> dict[str, Any]:
    """The preset's dotted values, validated over ``params_path``; ParamsError naming the file and key."""
    from musicrec.config import parse_params

    path = preset_path(name_or_path, root)
    if not path.is_file():
        names = ", ".join(available(root)) or "none"
        raise ParamsError(f"{path}: preset not found (presets in {Path(root) / PRESETS_DIR}: {names})")
    tree = read_params_file(path)
    if not isinstance(tree, dict) or not tree:
        raise ParamsError(f"{path}: a preset is a YAML mapping of params.yaml keys to values (got "
                          f"{type(tree).__name__})")
    values = flatten(tree)
    unknown = _unknown_keys(values)
    if unknown:
        raise ParamsError(f"{path}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: a preset "
                          "holds params.yaml keys only (see params.yaml for the names)")
    base = read_params_file(params_path)
    parse_params(merge(base, values), path)  # every value checked by the schema, errors named by the preset
    return values


def format_value(v: Any) -> str:
    """A value as ``dvc exp run -S`` reads it (YAML: null, true, numbers, flow lists, plain strings)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def _has_key(tree: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


def set_args(values: dict[str, Any], base: dict[str, Any] | None = None) -> list[str]:
    """``["-S", "key=value", ...]`` for ``dvc exp run``, in the preset's order.

    A key that ``base`` (the parsed ``params.yaml``) lacks is written ``+key=value``: DVC's
    Hydra overrides only replace existing keys without the ``+``.
    """
    out: list[str] = []
    for k, v in values.items():
        plus = "+" if base is not None and not _has_key(base, k) else ""
        out += ["-S", f"{plus}{k}={format_value(v)}"]
    return out


def write_preset(path: Path | str, values: dict[str, Any], comment: str = "") -> None:
    """Write dotted ``values`` as a nested preset YAML (atomically), with ``comment`` lines on top."""
    import yaml

    from musicrec.io import write_text

    head = "".join(f"# {line}\n" for line in comment.splitlines())
    write_text(path, head + yaml.safe_dump(merge({}, values), sort_keys=False, default_flow_style=None))

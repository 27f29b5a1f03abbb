"""How a model (and the item features) is stored: ``model.json`` and ``.npz`` arrays, no pickle.

``model.json`` holds the model's name, format version, params, meta and the SHA-256
of every file of the model directory and of the JSON itself
(:func:`write_model_json`, :func:`read_model_json`, :func:`verify_files`).
Numeric state is flattened into plain ``.npz`` entries (CSR matrices as
``name__data`` etc., :func:`pack_arrays`, written by :func:`write_npz`) and read back
with ``allow_pickle=False`` into an :class:`ArrayBundle`, whose every error names the
file (:func:`load_npz`). Used by :class:`~musicrec.models.base.Recommender` and by
:class:`~musicrec.models.features.ItemFeatures`; imports neither.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.errors import DataError

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
ARRAYS_NPZ = "arrays.npz"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def pack_arrays(state: dict[str, np.ndarray | sp.spmatrix | None]) -> dict[str, np.ndarray]:
    """Flatten arrays and CSR matrices into plain ``.npz`` entries (``name__data`` etc.)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if value is None:
            continue
        if sp.issparse(value):
            m = sp.csr_matrix(value)
            flat[f"{key}__data"] = m.data
            flat[f"{key}__indices"] = m.indices
            flat[f"{key}__indptr"] = m.indptr
            flat[f"{key}__shape"] = np.asarray(m.shape, dtype=np.int64)
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                raise TypeError(f"array {key!r} has dtype object and cannot be saved without pickle")
            flat[key] = arr
    return flat


class ArrayBundle:
    """Read access to a loaded ``arrays.npz`` that names the file in every error."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray]):
        self.path = path
        self._arrays = arrays

    def __contains__(self, key: str) -> bool:
        return key in self._arrays or f"{key}__data" in self._arrays

    def is_sparse(self, key: str) -> bool:
        """Whether ``key`` was saved as a sparse matrix (``key__data`` etc.)."""
        return f"{key}__data" in self._arrays

    def array(self, key: str, *, dtype: Any = None, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
        if key not in self._arrays:
            raise DataError(f"{self.path}: missing array {key!r} (file modified or corrupt)")
        arr = self._arrays[key]
        if dtype is not None and arr.dtype != np.dtype(dtype):
            raise DataError(f"{self.path}: array {key!r} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
        if shape is not None and (
            arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape))
        ):
            raise DataError(f"{self.path}: array {key!r} has shape {arr.shape}, expected {shape}")
        return arr

    def csr(self, key: str, *, shape: tuple[int, int] | None = None) -> sp.csr_matrix:
        try:
            got = tuple(int(x) for x in self.array(f"{key}__shape", shape=(2,)))
            m = sp.csr_matrix(
                (self.array(f"{key}__data"), self.array(f"{key}__indices"), self.array(f"{key}__indptr")),
                shape=got,
            )
            m.check_format(full_check=True)
        except ValueError as err:
            if str(err).startswith(str(self.path)):
                raise
            raise DataError(f"{self.path}: sparse matrix {key!r} is invalid ({err})") from None
        if shape is not None and m.shape != tuple(shape):
            raise DataError(f"{self.path}: sparse matrix {key!r} has shape {m.shape}, expected {shape}")
        return m


def read_model_json(directory: Path | str) -> dict[str, Any]:
    """Read and verify ``model.json`` (JSON, self-checksum, required keys, format version)."""
    path = Path(directory) / MODEL_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; {Path(directory)} is not a saved model directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object")
    checksum = doc.pop("sha256", None)
    if checksum != hashlib.sha256(_canonical(doc)).hexdigest():
        raise DataError(f"{path}: checksum mismatch (file modified or corrupt)")
    for key, typ in (("model", str), ("format_version", int), ("params", dict), ("meta", dict),
                     ("files", dict), ("seed", int), ("n_users", int), ("n_items", int)):
        if not isinstance(doc.get(key), typ):
            raise DataError(f"{path}: key {key!r} missing or not a {typ.__name__}")
    if doc["format_version"] != FORMAT_VERSION:
        raise DataError(
            f"{path}: format_version {doc['format_version']} is not supported (expected {FORMAT_VERSION})"
        )
    return doc


def verify_files(directory: Path, doc: dict[str, Any]) -> None:
    """Check the SHA-256 of every file listed in ``model.json``."""
    for rel, digest in sorted(doc["files"].items()):
        path = directory / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise DataError(f"{directory / MODEL_JSON}: bad file entry {rel!r}")
        if not path.is_file():
            raise DataError(f"{path}: missing (listed in {directory / MODEL_JSON})")
        if _sha256(path) != digest:
            raise DataError(f"{path}: checksum mismatch (file modified or corrupt)")


def write_npz(path: Path, state: dict[str, np.ndarray | sp.spmatrix | None]) -> None:
    """Write ``state`` (arrays and CSR matrices, see :func:`pack_arrays`) to one uncompressed ``.npz``."""
    with open(path, "wb") as fh:
        np.savez(fh, **pack_arrays(state))


def write_model_json(directory: Path, doc: dict[str, Any]) -> None:
    """Write ``directory/model.json``: ``doc`` plus the SHA-256 of every other file there and of itself."""
    files = {
        p.relative_to(directory).as_posix(): _sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p != directory / MODEL_JSON
    }
    doc = {**doc, "files": files}
    doc["sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    (directory / MODEL_JSON).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_bundle(directory: Path) -> ArrayBundle:
    return load_npz(directory / ARRAYS_NPZ)


def load_npz(path: Path) -> ArrayBundle:
    """Load every array of an ``.npz`` without pickle; errors name the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError) as err:
        raise DataError(f"{path}: not a valid array .npz file ({err})") from None
    return ArrayBundle(path, arrays)

"""The data a run read, logged as MLflow dataset inputs (the runs list's Dataset column).

Each input is a :class:`DvcDatasetSource` (the path in the repository, its DVC md5 and where
DVC keeps that object in the default remote) wrapped in an ``mlflow.data`` ``MetaDataset``
whose digest is the DVC md5, logged with ``mlflow.log_inputs`` and a context (``training`` /
``evaluation``). Nothing is uploaded: the data stay in DVC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.data.dataset_source import DatasetSource


def remote_url(repo_root: Path | str) -> str | None:
    """URL of the repository's default DVC remote (``core.remote``), or None when there is none."""
    dvc_dir = Path(repo_root) / ".dvc"
    if not dvc_dir.is_dir():
        return None
    from dvc.config import Config

    with contextlib.suppress(Exception):  # an unreadable config only costs the URL
        cfg = Config(dvc_dir=str(dvc_dir), validate=False)
        name = cfg["core"].get("remote")
        if name:
            return cfg["remote"].get(name, {}).get("url")
    return None


def object_url(remote: str | None, md5: str | None) -> str | None:
    """Where DVC 3 stores the object ``md5`` in ``remote`` (``<remote>/files/md5/ab/cdef...``)."""
    if not remote or not md5:
        return None
    from musicrec.tracking.redact import redact_url

    return redact_url(f"{remote.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}")


class DvcDatasetSource(DatasetSource):
    """A DVC-tracked path: ``path`` in the repository, its ``md5`` and its ``url`` in the DVC remote."""

    def __init__(self, path: str, md5: str | None, url: str | None = None):
        self.path, self.md5, self.url = path, md5, url

    @staticmethod
    def _get_source_type() -> str:
        return "dvc"

    def load(self, dst_path: str | None = None) -> str:
        raise NotImplementedError(f"`dvc pull {self.path}` fetches this dataset")

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> DvcDatasetSource:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "md5": self.md5, "url": self.url}

    @classmethod
    def from_dict(cls, source_dict: Mapping[Any, Any]) -> DvcDatasetSource:
        return cls(source_dict["path"], source_dict.get("md5"), source_dict.get("url"))


def log_datasets(data: Mapping[str, str | None], contexts: Mapping[str, str], repo_root: Path | str) -> int:
    """Log each ``path -> md5`` of ``data`` as a dataset input with ``contexts[path]``; returns how many."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset

    remote = remote_url(repo_root)
    datasets, ctx, tags = [], [], []
    for path, md5 in data.items():
        if md5 is None:
            continue
        src = DvcDatasetSource(path, md5, object_url(remote, md5))
        datasets.append(MetaDataset(src, name=path, digest=md5.removesuffix(".dir")[:36]))
        ctx.append(contexts.get(path, "input"))
        tags.append({"dvc.md5": md5, **({"dvc.url": src.url} if src.url else {})})
    if datasets:
        mlflow.log_inputs(datasets=datasets, contexts=ctx, tags_list=tags)
    return len(datasets)

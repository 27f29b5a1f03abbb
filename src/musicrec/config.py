"""Pipeline parameters: one schema, loaded and validated in one place.

``load_params`` reads ``params.yaml`` and returns a frozen, typed :class:`Params`.
Unknown keys, missing keys, wrong types and out-of-range values raise
:class:`ParamsError` whose message names the file and every offending key
(``train.als.factors: must be greater than 0 (got -4)``).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

SOURCES = ("synthetic", "kaggle", "taste_profile", "lastfm_1k", "lastfm_360k", "hetrec_lastfm_2k")
MODELS = ("popularity", "itemknn", "als", "bpr", "ease", "rp3beta", "content", "hybrid")


class ParamsError(ValueError):
    """Invalid params file; the message names the file and each bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class DataParams(_Strict):
    source: Literal["synthetic", "kaggle", "taste_profile", "lastfm_1k", "lastfm_360k", "hetrec_lastfm_2k"]
    raw_root: str = "data/raw"
    unmatched: Literal["keep", "drop"] = "keep"
    chunk_rows: int = Field(500_000, gt=0)
    allow_absolute_paths: bool = False  # also: raw files / folders that are symlinks out of the repository
    # reader limits (musicrec.readers.InputPolicy has the same fields and defaults)
    max_line_bytes: int = Field(64 << 20, strict=True, ge=1024, le=1 << 30)  # longer: line_too_long
    max_decompressed_bytes: int = Field(16 << 30, strict=True, ge=1 << 20, le=1 << 40)  # per .gz/.bz2/.xz/zip member
    max_compression_ratio: float = Field(100.0, strict=True, gt=1, le=100_000)  # decompressed / compressed bytes
    max_quarantined_share: float = Field(0.5, strict=True, ge=0, le=1)  # of a file's rows; above: the clean stops
    quarantine_share_min_rows: int = Field(1000, strict=True, ge=1, le=1_000_000_000)  # smaller files: not judged

    @model_validator(mode="after")
    def _raw_root_inside_repo(self) -> "DataParams":
        """Refuse an absolute ``raw_root`` or one whose ``..`` leaves the repository (unless allowed).

        A lexical check (the repository root is not known here; symlinks are
        checked by :func:`resolve_path` where a root is given).
        """
        if self.allow_absolute_paths:
            return self
        p = PurePosixPath(self.raw_root.replace("\\", "/"))
        if p.is_absolute() or PureWindowsPath(self.raw_root).drive:
            raise ValueError(f"data.raw_root {self.raw_root!r} is an absolute path; use a path inside the repository "
                             "or set data.allow_absolute_paths: true")
        depth = 0
        for part in p.parts:
            depth += -1 if part == ".." else (0 if part == "." else 1)
            if depth < 0:
                raise ValueError(f"data.raw_root {self.raw_root!r} leaves the repository through '..'; use a path "
                                 "inside the repository or set data.allow_absolute_paths: true")
        return self


class GenerateParams(_Strict):
    n_tracks: int = Field(gt=0)
    n_users: int = Field(gt=0)
    n_plays: int = Field(gt=0)
    n_genres: int = Field(16, gt=0, le=64)
    n_artists: int = Field(gt=0)


# Sources whose items are artists: their counts are a user's total plays of an artist (HetRec 2K has 25
# user-artist weights above 100,000, up to 352,698), so they get their own, higher cap.
ARTIST_LEVEL_SOURCES = ("lastfm_360k", "hetrec_lastfm_2k")


class CleanParams(_Strict):
    max_playcount: int = Field(100_000, gt=0)  # per (user, track): larger counts are quarantined
    max_artist_playcount: int = Field(10_000_000, gt=0)  # per (user, artist), for ARTIST_LEVEL_SOURCES

    def cap_for(self, source: str) -> int:
        """The play-count cap that applies to ``source`` (artist-level sources use ``max_artist_playcount``)."""
        return self.max_artist_playcount if source in ARTIST_LEVEL_SOURCES else self.max_playcount


class TransformParams(_Strict):
    min_user_items: int = Field(5, ge=1)
    min_item_users: int = Field(5, ge=1)
    max_passes: int = Field(20, ge=1)
    # output Parquet partitions (hash of user): a number, or "auto" =
    # max(min_partitions, ceil(input rows / partition_rows)), so that a partition's size, and with it the
    # transform's memory, stays flat as the input grows (README: Scaling out)
    partitions: int | Literal["auto"] = "auto"
    partition_rows: int = Field(300_000, ge=1)
    min_partitions: int = Field(8, ge=1, le=4096)

    @field_validator("partitions", mode="before")
    @classmethod
    def _partitions(cls, v: Any) -> Any:
        if v == "auto":
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError("must be auto or a whole number of partitions (1 to 4096)")
        if not 1 <= v <= 4096:
            raise ValueError("must be auto or a number greater than or equal to 1 and less than or equal to 4096")
        return v

    def partitions_for(self, n_rows: int) -> int:
        """The number of output partitions for an input of ``n_rows`` rows."""
        if self.partitions != "auto":
            return int(self.partitions)
        return int(min(4096, max(self.min_partitions, -(-int(n_rows) // self.partition_rows))))


class DaskParams(_Strict):
    scheduler: str = "threads"
    address: str | None = None  # tcp://host:port of an existing cluster; overrides scheduler
    num_workers: int = Field(2, ge=1)
    blocksize: str = "64MB"

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None or v.startswith(("tcp://", "tls://")):
            return v
        raise ValueError("must be null or a tcp://host:port (or tls://) Dask scheduler address")

    @property
    def effective_scheduler(self) -> str:
        return self.address or self.scheduler

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        if v in ("threads", "processes", "synchronous") or v.startswith(("tcp://", "tls://")):
            return v
        raise ValueError("must be threads, processes, synchronous or a tcp://host:port scheduler address")


class SplitParams(_Strict):
    method: Literal["random", "temporal", "cold_users"] = "random"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    min_user_items: int = Field(5, ge=2)
    cold_user_fraction: float = Field(0.1, gt=0, lt=1)
    cold_known_items: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _fractions(self) -> "SplitParams":
        if self.test_fraction + self.validation_fraction >= 1:
            raise ValueError("test_fraction + validation_fraction must be below 1")
        return self


class InteractionsParams(_Strict):
    weighting: Literal["raw", "log1p", "bm25"] = "bm25"
    bm25_k1: float = Field(100.0, gt=0)
    bm25_b: float = Field(0.8, ge=0, le=1)
    split: SplitParams = SplitParams()


class PopularityParams(_Strict):
    recent_days: float | None = Field(None, gt=0)


class ItemKNNParams(_Strict):
    similarity: Literal["cosine", "bm25"] = "bm25"
    k: int = Field(100, gt=0)


class ALSParams(_Strict):
    factors: int = Field(64, gt=0)
    regularization: float = Field(0.05, ge=0)
    alpha: float = Field(2.0, gt=0)
    iterations: int = Field(15, gt=0)
    use_gpu: bool | Literal["auto"] = False  # implicit.gpu: auto falls back to the CPU, true fails without CUDA


class BPRParams(_Strict):
    factors: int = Field(64, gt=0)
    learning_rate: float = Field(0.01, gt=0)
    regularization: float = Field(0.01, ge=0)
    iterations: int = Field(100, gt=0)


class EASEParams(_Strict):
    l2: float = Field(500.0, gt=0)
    max_items: int = Field(30_000, gt=0)


class RP3BetaParams(_Strict):
    alpha: float = Field(1.0, gt=0)
    beta: float = Field(0.5, ge=0)
    k: int = Field(100, gt=0)


class ContentParams(_Strict):
    tag_weight: float = Field(1.0, ge=0)
    audio_weight: float = Field(0.5, ge=0)


class HybridParams(_Strict):
    collaborative: Literal["popularity", "itemknn", "als", "bpr", "ease", "rp3beta"] = "als"
    weight_collaborative: float = Field(0.8, ge=0)
    weight_content: float = Field(0.2, ge=0)
    mmr_lambda: float | None = Field(None, ge=0, le=1)


class TrainParams(_Strict):
    models: list[Literal["popularity", "itemknn", "als", "bpr", "ease", "rp3beta", "content", "hybrid"]]
    popularity: PopularityParams = PopularityParams()
    itemknn: ItemKNNParams = ItemKNNParams()
    als: ALSParams = ALSParams()
    bpr: BPRParams = BPRParams()
    ease: EASEParams = EASEParams()
    rp3beta: RP3BetaParams = RP3BetaParams()
    content: ContentParams = ContentParams()
    hybrid: HybridParams = HybridParams()

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one model")
        if len(set(v)) != len(v):
            raise ValueError(f"models listed twice: {sorted({m for m in v if v.count(m) > 1})}")
        if "popularity" not in v:
            raise ValueError("popularity must stay in the list: it is the baseline every model is compared with")
        return v

    def model_params(self, name: str) -> dict[str, Any]:
        return getattr(self, name).model_dump()


class EvaluateParams(_Strict):
    k: list[int] = Field(default_factory=lambda: [5, 10, 20, 50])
    main_k: int = Field(10, gt=0)
    bootstrap: int = Field(200, ge=0)
    sample_users: int = Field(5, ge=0)

    @model_validator(mode="after")
    def _ks(self) -> "EvaluateParams":
        if not self.k or any(k <= 0 for k in self.k):
            raise ValueError("k must list positive cut-offs")
        if self.main_k not in self.k:
            raise ValueError(f"main_k={self.main_k} must be one of k={self.k}")
        return self


class MlflowParams(_Strict):
    experiment: str = "musicrec"
    required: bool = True
    timeout_s: float = Field(10, gt=0)


class Params(_Strict):
    seed: int = Field(ge=0)
    data: DataParams
    generate: GenerateParams
    clean: CleanParams = CleanParams()
    transform: TransformParams = TransformParams()
    dask: DaskParams = DaskParams()
    interactions: InteractionsParams = InteractionsParams()
    train: TrainParams
    evaluate: EvaluateParams = EvaluateParams()
    mlflow: MlflowParams = MlflowParams()


def _format_errors(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid parameters:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        elif e["type"] == "missing":
            msg = "missing required key"
        got = e.get("input")
        # a model validator that names one of its fields ("data.raw_root '/etc' is ...") reports under that key
        named = re.match(rf"^Value error, ({re.escape(key)}\.[A-Za-z_][\w.]*) (.*)$", msg, re.S)
        if named:
            key, msg = named.group(1), named.group(2)
        suffix = "" if e["type"] in ("missing",) or isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"  {key}: {msg}{suffix}")
    return "\n".join(lines)


def parse_params(raw: Any, path: Path | str = "params.yaml") -> Params:
    """Validate an already-parsed params mapping."""
    path = Path(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a YAML mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(_format_errors(path, err)) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, path)


def resolve_path(p: str | Path, root: Path | str = ".", allow_absolute: bool = False) -> Path:
    """Resolve a path taken from params, refusing ones that escape ``root``.

    Absolute paths and ``..`` that leave the repository are refused unless
    ``allow_absolute`` (``data.allow_absolute_paths``) is set.
    """
    root = Path(root).resolve()
    path = Path(p)
    full = (path if path.is_absolute() else root / path).resolve()
    if not allow_absolute and not full.is_relative_to(root):
        raise ParamsError(
            f"path {str(p)!r} resolves to {full}, outside the repository {root}; "
            "set data.allow_absolute_paths: true to allow it"
        )
    return full

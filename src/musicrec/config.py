"""Pipeline parameters: one schema, loaded and validated in one place.

``load_params`` reads ``params.yaml`` and returns a frozen, typed :class:`Params`.
Unknown keys, missing keys, wrong types and out-of-range values raise
:class:`ParamsError` whose message names the file and every offending key
(``train.als.factors: Input should be greater than 0 (got -4)``).

The file is hostile input: it is read by :mod:`musicrec.params_file` (UTF-8 with a size
limit, a strict YAML loader, YAML 1.2 scalars, duplicate keys refused, errors cut to a
bounded length). Types are strict (no bool -> int, 1.5 -> int or "3" -> int), floats
finite, every number has an upper bound and every string a maximum length. Every problem
is one :class:`ParamsError` naming the file and the line/column or the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from musicrec.ingest import SOURCES as SOURCE_REGISTRY
from musicrec.models import MODELS as MODEL_REGISTRY
from musicrec.params_file import ParamsError, format_validation_errors, read_params_file, shorten
from musicrec.sections import Section

SOURCES = tuple(SOURCE_REGISTRY)


class DataParams(Section):
    source: Literal[SOURCES]  # type: ignore[valid-type]
    raw_root: str = "data/raw"
    unmatched: Literal["keep", "drop"] = "keep"
    chunk_rows: int = Field(500_000, gt=0, le=10_000_000)
    allow_absolute_paths: bool = False  # also: raw files / folders that are symlinks out of the repository
    # reader limits (musicrec.ingest.inputs.InputPolicy has the same fields and defaults)
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


class GenerateParams(Section):
    n_tracks: int = Field(gt=0, le=10_000_000)
    n_users: int = Field(gt=0, le=100_000_000)
    n_plays: int = Field(gt=0, le=1_000_000_000)
    n_genres: int = Field(16, gt=0, le=64)
    n_artists: int = Field(gt=0, le=10_000_000)


# Sources whose items are artists: their counts are a user's total plays of an artist (HetRec 2K has 25
# user-artist weights above 100,000, up to 352,698), so they get their own, higher cap.
ARTIST_LEVEL_SOURCES = tuple(name for name, src in SOURCE_REGISTRY.items() if src.artist_level)


class CleanParams(Section):
    # per (user, track): larger counts are quarantined; at most 1e9 so that sums of up to 1e9 rows stay in int64
    max_playcount: int = Field(100_000, gt=0, le=1_000_000_000)
    max_artist_playcount: int = Field(10_000_000, gt=0, le=1_000_000_000)  # per (user, artist), ARTIST_LEVEL_SOURCES

    def cap_for(self, source: str) -> int:
        """The play-count cap that applies to ``source`` (artist-level sources use ``max_artist_playcount``)."""
        return self.max_artist_playcount if source in ARTIST_LEVEL_SOURCES else self.max_playcount


class TransformParams(Section):
    min_user_items: int = Field(5, ge=1, le=1_000_000)
    min_item_users: int = Field(5, ge=1, le=1_000_000)
    max_passes: int = Field(20, ge=1, le=1000)
    # output Parquet partitions (hash of user): a number, or "auto" =
    # max(min_partitions, ceil(input rows / partition_rows)), so that a partition's size, and with it the
    # transform's memory, stays flat as the input grows (README: Scaling out)
    partitions: int | Literal["auto"] = "auto"
    partition_rows: int = Field(300_000, ge=1, le=100_000_000)
    min_partitions: int = Field(8, ge=1, le=4096)

    @field_validator("partitions", mode="before")
    @classmethod
    def _partitions(cls, v: Any) -> Any:
        if isinstance(v, str) and v == "auto":
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


SCHEDULERS = ("threads", "processes", "synchronous")
MIN_BLOCKSIZE, MAX_BLOCKSIZE = 1_000_000, 2**30  # dask.blocksize: 1MB .. 1GiB


def _is_scheduler_address(v: str) -> bool:
    """Whether ``v`` is a Dask scheduler address ``tcp://host:port`` or ``tls://host:port``."""
    try:
        u = urlsplit(v)
        port = u.port
    except ValueError:  # a bad port or IPv6 literal
        return False
    return (u.scheme in ("tcp", "tls") and bool(u.hostname) and port is not None and 1 <= port <= 65535
            and u.path in ("", "/") and not u.query and not u.fragment and u.username is None)


class DaskParams(Section):
    scheduler: str = "threads"
    address: str | None = None  # tcp://host:port of an existing cluster; overrides scheduler
    num_workers: int = Field(2, ge=1, le=64)
    blocksize: str = "64MB"

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None or _is_scheduler_address(v):
            return v
        raise ValueError("must be null or a tcp://host:port (or tls://) Dask scheduler address (port 1 to 65535)")

    @property
    def effective_scheduler(self) -> str:
        return self.address or self.scheduler

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        if v in SCHEDULERS or _is_scheduler_address(v):
            return v
        raise ValueError(f"must be {', '.join(SCHEDULERS)} or a tcp://host:port scheduler address (port 1 to 65535)")

    @field_validator("blocksize", mode="before")
    @classmethod
    def _blocksize(cls, v: Any) -> Any:
        """A size Dask understands (``dask.utils.parse_bytes``), from 1MB to 1GiB."""
        from dask.utils import parse_bytes

        try:
            n = parse_bytes(v) if isinstance(v, str) and v.strip() else None
        except (ValueError, OverflowError):
            n = None
        if n is None or not MIN_BLOCKSIZE <= n <= MAX_BLOCKSIZE:
            raise ValueError("must be a size from 1MB to 1GiB written with its unit, such as 64MB or 128MiB")
        return v


class SplitParams(Section):
    method: Literal["random", "temporal", "cold_users", "strong_generalization"] = "random"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    min_user_items: int = Field(5, ge=2, le=1_000_000)
    cold_user_fraction: float = Field(0.1, gt=0, lt=1)
    cold_known_items: int = Field(3, ge=0, le=1_000_000)
    heldout_users: int | None = Field(None, ge=1, le=2**31 - 1)
    heldout_fraction: float = Field(0.1, gt=0, lt=0.5)
    query_fraction: float = Field(0.8, gt=0, lt=1)

    @model_validator(mode="after")
    def _fractions(self) -> "SplitParams":
        if self.test_fraction + self.validation_fraction >= 1:
            raise ValueError("test_fraction + validation_fraction must be below 1")
        return self


class InteractionsParams(Section):
    split: SplitParams = SplitParams()

    @model_validator(mode="before")
    @classmethod
    def _weighting_moved(cls, data: Any) -> Any:
        from musicrec.models import WEIGHTING_KEYS

        moved = [k for k in WEIGHTING_KEYS if isinstance(data, Mapping) and k in data]
        if moved:
            raise ValueError(f"{', '.join('interactions.' + k for k in moved)} moved: the input weighting is set "
                             f"per model now; write train.<model>.{moved[0]} for each model (e.g. "
                             "train.als.weighting: log1p) and delete it from interactions")
        return data


class TrainSection(Section):
    """What ``train`` adds to its per-model sections (built by :func:`train_params_model`)."""

    @field_validator("models", check_fields=False)
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


def train_params_model(models: Mapping[str, type[Section]]) -> type[TrainSection]:
    """The ``train`` section's schema: ``models`` (a list of registered names) plus one section per model.

    ``models`` maps each registered model name to its ``Params`` class
    (:data:`musicrec.models.MODELS`), so that adding a model adds its section here.
    """
    names = tuple(models)
    fields: dict[str, Any] = {"models": (list[Literal[names]], Field(max_length=len(names)))}  # type: ignore[valid-type]
    fields.update({name: (params, params()) for name, params in models.items()})
    return create_model("TrainParams", __base__=TrainSection, **fields)


TrainParams = train_params_model({name: spec.Params for name, spec in MODEL_REGISTRY.items()})
MODELS = tuple(MODEL_REGISTRY)


MAX_K = 1000  # the largest cut-off K (evaluate.k, evaluate.main_k)


class EvaluateParams(Section):
    k: list[Annotated[int, Field(gt=0, le=MAX_K)]] = Field(default_factory=lambda: [5, 10, 20, 50], min_length=1,
                                                           max_length=16)
    main_k: int = Field(10, gt=0, le=MAX_K)
    bootstrap: int = Field(200, ge=0, le=10_000)
    # select on validation, then refit on train + validation for test: the train stage scores the
    # train fit on validation (what tuning, the champion and exp-show select on), then fits the
    # model again on train + validation, which is scored on test and saved (served, logged)
    refit_on_validation: bool = False
    sample_users: int = Field(5, ge=0, le=1000)

    @field_validator("k")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        twice = sorted({k for k in v if v.count(k) > 1})
        if twice:
            raise ValueError(f"cut-offs listed twice: {twice}; list each K once")
        return v

    @model_validator(mode="after")
    def _ks(self) -> "EvaluateParams":
        if self.main_k not in self.k:
            raise ValueError(f"main_k={self.main_k} must be one of k={self.k}")
        return self


class MlflowParams(Section):
    experiment: str = Field("musicrec", min_length=1, max_length=256)
    required: bool = True
    timeout_s: float = Field(10, gt=0, le=3600)


# the cut-offs of the MSD strong-generalisation protocol (Liang et al. 2018): Recall@20, Recall@50, NDCG@100
STRONG_GENERALIZATION_KS = (20, 50, 100)


class Params(Section):
    seed: int = Field(ge=0, le=2**32 - 1)  # numpy RandomState (implicit's random_state) takes 32 bits
    data: DataParams
    generate: GenerateParams
    clean: CleanParams = CleanParams()
    transform: TransformParams = TransformParams()
    dask: DaskParams = DaskParams()
    interactions: InteractionsParams = InteractionsParams()
    train: TrainParams
    evaluate: EvaluateParams = EvaluateParams()
    mlflow: MlflowParams = MlflowParams()

    @model_validator(mode="after")
    def _protocol_cutoffs(self) -> "Params":
        missing = [k for k in STRONG_GENERALIZATION_KS if k not in self.evaluate.k]
        if self.interactions.split.method == "strong_generalization" and missing:
            raise ValueError(
                "interactions.split.method=strong_generalization reports Recall@20, Recall@50 and NDCG@100: "
                f"add {missing} to evaluate.k (e.g. k: [20, 50, 100])")
        return self


def _yaml_kind(value: Any) -> str:
    """``list (a YAML list)``: the Python type of a parsed document, and what it is in YAML terms."""
    kind = ("an empty document" if value is None else "a YAML list" if isinstance(value, list)
            else f"a single value {shorten(value)}")
    return f"{type(value).__name__} ({kind})"


def parse_params(raw: Any, path: Path | str = "params.yaml") -> Params:
    """Validate an already-parsed params mapping."""
    path = Path(path)
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a YAML mapping at the top level, got {_yaml_kind(raw)}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(format_validation_errors(path, err)) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; every problem is a :class:`ParamsError` naming the file."""
    return parse_params(read_params_file(path), path)


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

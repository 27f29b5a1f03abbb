"""Pipeline parameters: one schema, loaded and validated in one place.

``load_params`` reads ``params.yaml`` and returns a frozen, typed :class:`Params`.
Unknown keys, missing keys, wrong types and out-of-range values raise
:class:`ParamsError` whose message names the file and every offending key
(``train.als.factors: Input should be greater than 0 (got -4)``).

The file is hostile input: it is read as UTF-8 of at most :data:`MAX_FILE_BYTES`,
by a YAML loader that refuses anchors/aliases (no alias bombs), explicit tags, merge
keys, duplicate keys at any depth and nesting deeper than :data:`MAX_DEPTH`, and
reads scalars as YAML 1.2 (as DVC does). Types are strict (no bool -> int, 1.5 -> int
or "3" -> int), floats finite, every number has an upper bound and every string a
maximum length; errors print at most :data:`MAX_ERRORS` keys with each value cut to
:data:`MAX_VALUE_CHARS` characters. Every problem is one :class:`ParamsError` naming
the file and the line/column or the key.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from musicrec.errors import UserError
from musicrec.ingest import SOURCES as SOURCE_REGISTRY
from musicrec.models import MODELS as MODEL_REGISTRY
from musicrec.sections import MAX_STRING_CHARS, Section

SOURCES = tuple(SOURCE_REGISTRY)

MAX_FILE_BYTES = 64 * 1024  # the committed params.yaml is about 4 KiB; loading 64 KiB takes well under a second
MAX_DEPTH = 16  # nesting levels (params.yaml has 4)
MAX_ERRORS = 10  # keys listed in one ParamsError, then "... and N more"
MAX_VALUE_CHARS = 80  # an offending value is shown cut to this many characters


class ParamsError(UserError, ValueError):
    """Invalid params file; the message names the file and each bad key."""


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
    method: Literal["random", "temporal", "cold_users"] = "random"
    test_fraction: float = Field(0.2, gt=0, lt=1)
    validation_fraction: float = Field(0.1, ge=0, lt=1)
    min_user_items: int = Field(5, ge=2, le=1_000_000)
    cold_user_fraction: float = Field(0.1, gt=0, lt=1)
    cold_known_items: int = Field(3, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _fractions(self) -> "SplitParams":
        if self.test_fraction + self.validation_fraction >= 1:
            raise ValueError("test_fraction + validation_fraction must be below 1")
        return self


class InteractionsParams(Section):
    weighting: Literal["raw", "log1p", "bm25"] = "bm25"
    bm25_k1: float = Field(100.0, gt=0, le=1e6)
    bm25_b: float = Field(0.8, ge=0, le=1)
    split: SplitParams = SplitParams()


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


# --------------------------------------------------------------------------- error messages

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 2, 6, 6, 4, 6
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = MAX_VALUE_CHARS
_PLAIN_KEY = re.compile(r"[A-Za-z_][\w-]*\Z")


def _cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shorten(value: Any) -> str:
    """``repr(value)`` in at most :data:`MAX_VALUE_CHARS` characters, in bounded time for any value."""
    try:
        return _cut(_REPR.repr(value))
    except ValueError:  # an int of more than sys.get_int_max_str_digits() digits
        return f"<{type(value).__name__} too large to print>"


def _key(loc: Iterable[Any]) -> str:
    """``train.als.factors``: a plain key as it is, a list index as a number, any other key quoted and cut."""
    parts = [p if isinstance(p, str) and _PLAIN_KEY.match(p) else str(p) if type(p) is int else shorten(p)
             for p in loc]
    return _cut(".".join(parts) or "(top level)")


def describe_validation_errors(err: ValidationError, prefix: str = "") -> list[str]:
    """One ``key: what was expected (got value)`` line per error, at most :data:`MAX_ERRORS` then ``... and N more``.

    ``prefix`` (``"train.als"``) is put before every key. Values are cut to
    :data:`MAX_VALUE_CHARS` characters, so a huge value never floods the terminal.
    """
    errors = err.errors(include_url=False)
    lines = []
    for e in errors[:MAX_ERRORS]:
        key = _key(e["loc"]) if not prefix else f"{prefix}.{_key(e['loc'])}" if e["loc"] else prefix
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key (misspelled?)"
        elif e["type"] == "missing":
            msg = "missing required key"
        elif e["type"] == "invalid_key":
            msg = "keys must be names (text)"
        elif e["type"] == "int_type" and isinstance(e.get("input"), str):
            msg += ": decimal digits without quotes or leading zeros"
        elif e["type"] == "float_type" and isinstance(e.get("input"), str):
            msg += " without quotes"
        # a model validator that names one of its fields ("data.raw_root '/etc' is ...") reports under that key
        named = re.match(rf"^({re.escape(key)}\.[A-Za-z_][\w.]*) (.*)$", msg, re.S)
        if named:
            key, msg = named.group(1), named.group(2)
        msg = _cut(" ".join(msg.split()), 4 * MAX_VALUE_CHARS)
        got = e.get("input")
        suffix = "" if e["type"] in ("missing", "invalid_key") or isinstance(got, dict) else f" (got {shorten(got)})"
        lines.append(f"{key}: {msg}{suffix}")
    if len(errors) > MAX_ERRORS:
        lines.append(f"... and {len(errors) - MAX_ERRORS} more")
    return lines


def _format_errors(path: Path, err: ValidationError) -> str:
    return "\n".join([f"{path}: invalid parameters:", *(f"  {line}" for line in describe_validation_errors(err))])


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
        raise ParamsError(_format_errors(path, err)) from None


# --------------------------------------------------------------------------- reading the file


class _Refused(yaml.MarkedYAMLError):
    """YAML a params file must not use (aliases, merge keys, duplicate keys, deep nesting)."""


# Plain scalars are resolved as YAML 1.2 (its core schema, as DVC reads params.yaml), not as PyYAML's YAML 1.1:
# only true/false are booleans, integers are decimal and 1e6 is a float. YAML 1.1's yes/no/on/off, 0x1F, 0b101,
# 1:30 (base 60) and 0777 (octal in 1.1, decimal in 1.2) stay text, which the strict types refuse naming the key.
_CORE_SCHEMA = (  # int before float: "10" is an int, "10.0" and "1e6" are floats
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?(?:0|[1-9][0-9_]*)$", "-+0123456789"),
    ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*\.[0-9_]*)(?:[eE][-+]?[0-9]+)?"
                                r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
)


def _core_schema_resolvers() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    """SafeLoader's implicit resolvers (null, timestamp, ...) with bool, int and float as in YAML 1.2."""
    tags = {tag for tag, _, _ in _CORE_SCHEMA}
    table = {first: [(tag, rx) for tag, rx in resolvers if tag not in tags]
             for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for tag, regexp, firsts in _CORE_SCHEMA:
        for first in firsts:
            table.setdefault(first, []).append((tag, re.compile(regexp)))
    return table


class _ParamsLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses, with the line and column, what a params file never needs.

    Anchors and aliases are refused while composing, so an alias bomb ("billion
    laughs") is stopped at its first anchor before anything is expanded; so are
    explicit tags (``!!int``, ``!!python/...``, ``!custom``); nesting
    is bounded by :data:`MAX_DEPTH`; merge keys (``<<``) and a key given twice in
    one mapping (YAML forbids it; DVC refuses such a file, PyYAML would keep the
    last copy) are refused with both lines. Scalars are read as YAML 1.2 (see
    :data:`_CORE_SCHEMA`).
    """

    yaml_implicit_resolvers = _core_schema_resolvers()

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._paths: dict[int, str] = {}  # id(mapping node) -> its dotted key, for messages

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem="YAML anchors and aliases (&name, *name) are not allowed in a params file; "
                           "write each value out", problem_mark=event.start_mark)
        if getattr(event, "tag", None) not in (None, "!"):
            tag = shorten(event.tag.replace("tag:yaml.org,2002:", "!!", 1))
            raise _Refused(problem=f"explicit YAML tags ({tag}) are not allowed in a params file; write the plain "
                           "value", problem_mark=event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise _Refused(problem=f"nested more than {MAX_DEPTH} levels deep", problem_mark=event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as err:  # e.g. a 5000-digit int
            raise _Refused(problem=f"cannot read the value {shorten(node.value)} "
                           f"({_cut(' '.join(str(err).split()), 100)})", problem_mark=node.start_mark) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        where = self._paths.get(id(node), "")
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(problem="YAML merge keys (<<) are not allowed in a params file; write the keys out",
                               problem_mark=key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader refuses it below
                continue
            name = f"{where}.{key}" if where else str(key)
            if first is not key_node:
                raise _Refused(problem=f"key {shorten(name)} is given twice, at line {first.start_mark.line + 1} "
                               f"and line {key_node.start_mark.line + 1}; keep one (DVC refuses such a file too)",
                               problem_mark=key_node.start_mark)
            if isinstance(value_node, yaml.MappingNode):
                self._paths[id(value_node)] = name
        return super().construct_mapping(node, deep=deep)


def _at(text: str, index: int) -> str:
    """``line L, column C`` of character ``index`` of ``text`` (both from 1)."""
    line, line_start = text.count("\n", 0, index) + 1, text.rfind("\n", 0, index) + 1
    return f"line {line}, column {index - line_start + 1}"


def _yaml_error(path: Path, text: str, err: yaml.YAMLError) -> str:
    """One line for a YAML error: the file, line and column, and what is wrong (no snippet of the file)."""
    if isinstance(err, yaml.reader.ReaderError):
        return (f"{path}: {_at(text, err.position)}: not valid YAML: the character U+{err.character:04X} is not "
                "allowed in YAML text")
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(err.problem or err.context or "").split())
        if err.context and err.problem and err.context_mark and err.context_mark is not mark:
            problem += f" ({err.context} at line {err.context_mark.line + 1}, column {err.context_mark.column + 1})"
        if "'\\t'" in problem:
            problem += "; indent with spaces, not tabs"
        kind = "refused" if isinstance(err, _Refused) else "not valid YAML"
        return f"{path}: {where}{kind}: {_cut(problem, 200)}"
    return f"{path}: not valid YAML: {shorten(' '.join(str(err).split()))}"


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 (a leading byte-order mark is dropped), at most MAX_FILE_BYTES bytes."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a directory; expected a params YAML file") from None
    except OSError as err:
        raise ParamsError(f"{path}: cannot read the params file: {err.strerror or err}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ParamsError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; a params file is a few KiB of YAML "
                          "(is this the right file?)")
    for bom, encoding in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                          (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if data.startswith(bom):
            raise ParamsError(f"{path}: is {encoding} text (it starts with a {encoding} byte-order mark); expected "
                              f"UTF-8: convert it, e.g. iconv -f {encoding} -t UTF-8")
    data = data.removeprefix(b"\xef\xbb\xbf")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ParamsError(f"{path}: {_at(data.decode('latin-1'), nul)}: contains a NUL byte; expected UTF-8 text "
                          "(is it UTF-16/UTF-32 without a byte-order mark, or a binary file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParamsError(f"{path}: {_at(data.decode('latin-1'), err.start)}: not UTF-8 text (byte "
                          f"0x{data[err.start]:02X} cannot be decoded; Latin-1 or another legacy encoding?); "
                          "expected UTF-8") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; every problem is a :class:`ParamsError` naming the file."""
    path = Path(path)
    text = _read_text(path)
    try:
        loader = _ParamsLoader(text)  # the reader checks every character here
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise ParamsError(_yaml_error(path, text, err)) from None
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

"""Robust streaming readers for the delimited text files of the raw music data sets.

One function does the reading for every adapter: :func:`iter_records` streams a
text file (plain; ``.gz``, ``.bz2``, ``.xz`` or ``.zip`` by name; or a member of a zip archive) in chunks of
``chunk_rows`` records and hands back, per chunk, an Arrow table of the records
that have the expected number of fields and a table of the records it rejected.
Nothing is ever loaded whole: bytes are read in blocks of :data:`BLOCK_BYTES`.

What the reader handles, and how (each is counted, never silently dropped):

* Encodings: UTF-8 (a leading BOM is removed and reported), or Latin-1 when a
  spec says so (HetRec ``tags.dat``). In a UTF-8 file a line that is not valid
  UTF-8 is decoded as Latin-1 (every byte is valid there) and counted in
  ``ReaderStats.encoding_fallback_lines``. UTF-16 files, files with a NUL byte
  anywhere (any encoding; the error names its line), gzip data under a plain
  name and zip archives under a text name are refused with :class:`InputFormatError`.
* Control characters: a C0 control character (U+0001-U+0008, U+000E-U+001F, or
  DEL U+007F, anywhere in the field; VT, FF or a lone CR inside the stripped
  value; TAB and LF are data) is treated by the kind of field, as the spec
  declares it (``TableSpec.text_columns``). In an identifier or numeric field it
  rejects the record as ``control_character``. In a free-text field (titles,
  names, tags) each one is replaced by U+FFFD and the record is kept; the
  characters replaced and the records they are in are counted in
  ``ReaderStats.control_characters_replaced`` /
  ``rows_with_control_characters_replaced`` (the real MSD has titles like
  ``I\x19m Moving On``: a right quote cut down to its low byte upstream).
  Ignored extra columns are not checked. See :func:`strip_fields`.
* Line ends: LF and CRLF (the CR is removed, also where a CRLF ends a read
  block inside a quoted field); a final line without a newline is
  read, and if it does not have the expected fields it is rejected as
  ``truncated_last_line``.
* Quoting (CSV specs only): RFC 4180 double quotes, separators and newlines
  inside quoted fields, ``""`` escapes. A record spanning several physical lines
  is reported at the physical line where it starts. An opening quote that is not
  closed within :data:`MAX_RECORD_LINES` lines (or at end of file) rejects only
  that line as ``unterminated_quote``; parsing resumes on the next line. TSV
  specs treat quotes as ordinary characters (artist names contain them).
* Headers: where a header is expected its column names are matched by name
  (case-insensitive, aliases allowed, any order; extra columns allowed when the
  spec says so). The canonical name wins over an alias wherever the alias
  stands: the alias column is then an extra column (ignored and reported in
  ``ReaderStats.header_notes``) or, where extras are not allowed, the header is
  refused; two columns for one field (a name twice, or two aliases) are
  refused. A missing header is tolerated when the first line is data
  (a first line with no digit at all is taken as a header with unknown names). A
  header where none is expected is rejected as ``unexpected_header``. A header
  with the wrong columns, or a file whose first records all have the wrong
  number of fields (wrong separator), raises :class:`InputFormatError`.
* Blank lines are rejected as ``empty_line`` (also before the header: the
  header is looked for on the first non-blank record); records with the wrong
  number of fields as ``wrong_field_count``. A file with no record at all
  reports its header as ``missing`` when one is expected.
* Zip members: corrupt member data (bad CRC-32, broken deflate stream, data cut
  short) raises :class:`InputFormatError` naming the archive and the member;
  so do encrypted members and unsupported methods (Deflate64, PPMd, ...), with
  what to do. Broken ``.gz``/``.bz2``/``.xz`` data likewise names the file.
* Limits (:class:`InputPolicy`, the ``data.*`` params): a physical line longer
  than ``max_line_bytes`` is rejected as ``line_too_long`` (its first
  :data:`LONG_LINE_PREFIX` bytes kept) without ever being held whole; a
  compressed file or member that decompresses to more than
  ``max_decompressed_bytes``, or at a ratio above ``max_compression_ratio``
  (checked while streaming, against the compressed bytes actually read), is
  refused. Paths must resolve inside ``InputPolicy.root`` (the repository)
  after following symlinks unless ``allow_absolute_paths``.
* Field values are stripped of leading and trailing (Unicode) whitespace.

Line numbers are physical, 1-based, and count every line of the file including
the header.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.errors import UserError

BLOCK_BYTES = 1 << 23
MAX_RECORD_LINES = 200
SNIFF_RECORDS = 1000
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_UTF8_BOM = b"\xef\xbb\xbf"
_SEP_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe", "<SEP>": "<SEP>"}

REJECT_SCHEMA = pa.schema([("line", pa.int64()), ("reason", pa.string()), ("raw", pa.string())])


class InputFormatError(UserError, ValueError):
    """A raw input file is missing or not in the expected format.

    The message names the file, the line (and column where relevant) and what
    was expected, in one paragraph.
    """


@dataclass(frozen=True)
class InputPolicy:
    """What the readers accept: where input files may live, and size limits (the ``data.*`` params).

    ``root``: every file (and the input folder) must resolve, after following
    symlinks, inside this folder (the repository) unless
    ``allow_absolute_paths``; ``None`` checks nothing (library use on a folder
    the caller chose). The limits: the longest physical line in bytes (a longer
    one is quarantined as ``line_too_long``, never held whole), the largest
    decompressed size of a compressed file or zip member, the largest
    compression ratio (both checked while streaming, not only from headers),
    and the largest share of a file's rows that may be quarantined (checked by
    the clean for files of at least ``quarantine_share_min_rows`` rows).
    The defaults are those of ``params.yaml``.
    """

    root: Path | None = None
    allow_absolute_paths: bool = False
    max_line_bytes: int = 64 << 20
    max_decompressed_bytes: int = 16 << 30
    max_compression_ratio: float = 100.0
    max_quarantined_share: float = 0.5
    quarantine_share_min_rows: int = 1000

    @classmethod
    def from_params(cls, data: object, root: Path | None) -> "InputPolicy":
        """The policy of a ``DataParams`` (fields of the same names) with ``root`` as the repository."""
        return cls(root=root, **{f.name: getattr(data, f.name) for f in fields(cls) if f.name != "root"})

    def check_path(self, path: Path, what: str) -> Path:
        """``path`` resolved (symlinks followed); refused when it leaves ``root`` (unless allowed).

        The message names the path, where it (or the symlink on its way) points and
        the param that allows it; never anything read from the file.
        """
        full = Path(path).resolve()
        if self.root is None or self.allow_absolute_paths:
            return full
        root = Path(self.root).resolve()
        if full == root or full.is_relative_to(root):
            return full
        link = next((p for p in (Path(path), *Path(path).parents) if p.is_symlink()), None)
        via = f" through the symlink {link} -> {os.readlink(link)}" if link is not None else ""
        raise InputFormatError(
            f"{path}: {what} resolves{via} to {full}, outside the repository {root}; expected input files inside "
            f"the repository, so nothing outside it is read. Move or copy the data under the repository (e.g. "
            f"data/raw), or set data.allow_absolute_paths: true in params.yaml to read it there"
        )


DEFAULT_POLICY = InputPolicy()

# A compressed copy of an input is looked for (and read, streaming) under these suffixes.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zip")
# Compression ratios are judged once this much has been decompressed (tiny files compress oddly).
RATIO_MIN_BYTES = 1 << 20
LONG_LINE_PREFIX = 1024  # bytes of a too-long line kept in its quarantine row


@dataclass(frozen=True)
class InputFile:
    """A raw input file: a path (plain, ``.gz``, ``.bz2``, ``.xz`` or ``.zip``), or a member of a zip.

    A ``.zip`` path without ``member`` reads the member named like the path
    without ``.zip`` (any folder), or else the archive's only file.
    """

    path: Path
    member: str | None = None

    @property
    def name(self) -> str:
        """Name used in reports and the quarantine ``file`` column."""
        return f"{self.path.name}:{self.member}" if self.member else self.path.name

    @property
    def published_name(self) -> str:
        """The file's name as published: the member name, or the path's name less a compression suffix."""
        if self.member:
            return self.member
        suffix = self.path.suffix.lower()
        return self.path.name[:-len(suffix)] if suffix in COMPRESSED_SUFFIXES else self.path.name

    def checked_path(self, policy: InputPolicy | None = None) -> Path:
        """The resolved path of the file, after the existence and ``policy`` path checks."""
        if not self.path.exists():
            raise InputFormatError(f"{self.path}: file not found")
        if not self.path.is_file():
            raise InputFormatError(f"{self.path}: expected a file, found a directory or special file")
        return (policy or DEFAULT_POLICY).check_path(self.path, "the zip archive" if self.member else "the input file")

    def open(self, policy: InputPolicy | None = None) -> BinaryIO:
        """Open for binary reading, decompressing by name; refuse compressed-under-wrong-name and binary files."""
        policy = policy or DEFAULT_POLICY
        path = self.checked_path(policy)
        suffix = self.path.suffix.lower()
        if self.member is not None or suffix == ".zip":
            return _open_zip_member(self.path, path, self.member or self.published_name, policy,
                                    any_file=self.member is None)
        if suffix in _DECOMPRESSORS:
            kind, opener = _DECOMPRESSORS[suffix]
            raw = _Counting(open(path, "rb"))
            return _Guarded(opener(raw), raw, f"{self.path}", kind, policy)  # type: ignore[return-value]
        fh = open(path, "rb")
        head = fh.read(4)
        fh.seek(0)
        if head.startswith(_GZIP_MAGIC):
            fh.close()
            raise InputFormatError(
                f"{self.path}: line 1: the file is gzip-compressed (it starts with bytes 1f 8b) but its "
                f"name does not end in .gz; expected plain text. Decompress it (gunzip) or rename it "
                f"to {self.path.name}.gz"
            )
        if head.startswith(_ZIP_MAGIC):
            fh.close()
            raise InputFormatError(
                f"{self.path}: line 1: the file is a zip archive; expected plain text. Unzip it first, or "
                f"rename it to {self.path.name}.zip"
            )
        return fh  # type: ignore[return-value]


_DECOMPRESSORS = {
    ".gz": ("gzip", lambda fh: gzip.GzipFile(fileobj=fh, mode="rb")),
    ".bz2": ("bzip2", lambda fh: bz2.BZ2File(fh, "rb")),
    ".xz": ("xz", lambda fh: lzma.LZMAFile(fh, "rb")),
}
# what a broken compressed stream raises (gzip.BadGzipFile and bz2's "Invalid data stream" are OSErrors)
_DATA_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, NotImplementedError)


class _Counting(io.RawIOBase):
    """A binary file that counts the bytes read from it (the compressed bytes a decompressor consumed)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self.count += len(data)
        return data

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def close(self) -> None:
        self._fh.close()
        super().close()


class _Guarded(io.RawIOBase):
    """A decompressed stream that enforces the size and ratio limits while it is read.

    Broken data (bad CRC-32, a broken deflate/bzip2/xz stream, data cut short)
    is raised as :class:`InputFormatError` naming the file (and member), never
    as a bare ``zipfile``/``zlib``/``gzip`` error. ``closers`` are closed with it.
    """

    def __init__(self, inner: BinaryIO, counter: _Counting, where: str, kind: str, policy: InputPolicy,
                 closers: tuple = ()) -> None:
        self._inner = inner
        self._counter = counter
        self._where = where
        self._kind = kind
        self._policy = policy
        self._closers = closers
        self._out = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            return self.readall()
        try:
            data = self._inner.read(n)
        except _DATA_ERRORS as err:
            raise _corrupt(self._where, self._kind, err) from None
        self._out += len(data)
        _check_limits(self._where, self._out, self._counter.count, self._policy)
        return data

    def close(self) -> None:
        if not self.closed:
            for fh in (self._inner, *self._closers, self._counter):
                fh.close()
        super().close()


def _corrupt(where: str, kind: str, err: BaseException) -> InputFormatError:
    return InputFormatError(
        f"{where}: the {kind} data is corrupt or cut short ({type(err).__name__}: {err}); expected intact "
        f"{kind} data as published. Download it again and check its checksum"
    )


def _check_limits(where: str, out: int, compressed: int, policy: InputPolicy) -> None:
    """Refuse a stream that decompressed to more than the size limit or at more than the ratio limit."""
    if out > policy.max_decompressed_bytes:
        raise InputFormatError(
            f"{where}: decompresses to more than data.max_decompressed_bytes = {policy.max_decompressed_bytes} "
            f"bytes; expected at most that much. If the file is genuine, raise data.max_decompressed_bytes in "
            f"params.yaml"
        )
    if out >= RATIO_MIN_BYTES and out > policy.max_compression_ratio * max(compressed, 1):
        raise InputFormatError(
            f"{where}: {compressed} compressed bytes decompress to more than {out} bytes, a ratio above "
            f"data.max_compression_ratio = {policy.max_compression_ratio:g}; expected published text data, this "
            f"looks like a decompression bomb. If the file is genuine, raise data.max_compression_ratio in params.yaml"
        )


# zip compression methods zipfile reads, and names of some it does not
_ZIP_METHODS_READ = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_METHOD_NAMES = {1: "Shrink", 6: "Implode", 9: "Deflate64", 10: "PKWARE DCL Implode", 18: "IBM TERSE",
                     19: "IBM LZ77", 93: "Zstandard", 95: "XZ", 96: "JPEG", 97: "WavPack", 98: "PPMd"}
_ZIP_AES = 99  # WinZip AES encryption


def _zip_refusal(path: Path, info: zipfile.ZipInfo) -> str | None:
    """Why a member cannot be read (encrypted, unsupported method), with what to do; None if readable."""
    where = f"{path}: member {info.filename!r} of the zip archive"
    if info.flag_bits & 0x1 or info.compress_type == _ZIP_AES:
        return (f"{where} is encrypted (password-protected); expected an unencrypted archive as published. "
                f"Decrypt it first: extract it with its password (`unzip {path.name}` or 7-Zip) and either place "
                f"the extracted files here or re-compress them without a password (`zip -r {path.name} <folder>`)")
    if info.compress_type not in _ZIP_METHODS_READ:
        method = _ZIP_METHOD_NAMES.get(info.compress_type, "an unknown method")
        why = ", which Windows Explorer writes for large archives" if info.compress_type == 9 else ""
        return (f"{where} is compressed with {method} (zip method {info.compress_type}{why}); it cannot be "
                f"read here; expected standard Deflate (method 8), bzip2, LZMA or stored members. Re-compress it "
                f"with standard Deflate: extract it (`unzip {path.name}` or 7-Zip), then `zip -r {path.name} "
                f"<folder>`, or place the extracted files here")
    return None


def _zip_candidates(names: list[str], member: str, any_file: bool) -> list[str]:
    """Members that may be the wanted file: those named ``member`` (base name, any folder), else, when
    ``any_file``, every file of the archive (``__MACOSX`` and hidden files aside)."""
    files = [n for n in names if not n.endswith("/") and "__MACOSX" not in n and not n.rsplit("/", 1)[-1].startswith(".")]
    named = [n for n in files if n.rsplit("/", 1)[-1] == member]
    return named if (named or not any_file) else files


def _open_zip_member(path: Path, full: Path, member: str, policy: InputPolicy, any_file: bool = False) -> BinaryIO:
    """Open ``member`` of the archive ``path`` (resolved: ``full``); with ``any_file``, the only file if
    none has that name (a ``<name>.zip`` holding one file under another name)."""
    raw = _Counting(open(full, "rb"))
    try:
        zf = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raw.close()
        raise InputFormatError(f"{path}: not a valid zip archive ({err})") from None
    try:
        names = _zip_candidates(zf.namelist(), member, any_file)
        if len(names) != 1:
            found = sorted(n for n in zf.namelist() if not n.endswith("/"))
            if names and names[0].rsplit("/", 1)[-1] != member:
                raise InputFormatError(
                    f"{path}: {len(names)} files in the archive and none named {member!r}; expected that member "
                    f"or a single file. Keep only {member} in the archive, or extract it. Found: {found}")
            what = "no member" if not names else f"{len(names)} members"
            raise InputFormatError(f"{path}: {what} named {member!r} in the archive; expected exactly one. Found: {found}")
        info = zf.getinfo(names[0])
        refusal = _zip_refusal(path, info)
        if refusal:
            raise InputFormatError(refusal)
        where = f"{path}: member {names[0]!r}"
        _check_limits(where, info.file_size, min(info.compress_size, full.stat().st_size), policy)  # headers can lie
        try:
            inner = zf.open(info)
        except (*_DATA_ERRORS, RuntimeError) as err:
            raise _corrupt(where, "zip member", err) from None
    except BaseException:
        zf.close()
        raw.close()
        raise
    raw.count = 0  # count only the member's own compressed bytes from here
    return _Guarded(inner, raw, where, "zip member", policy, closers=(zf,))  # type: ignore[return-value]


@dataclass(frozen=True)
class TableSpec:
    """Expected layout of one delimited file.

    ``columns`` are the canonical names of the fields returned (in this order).
    ``header``: ``"required"`` (a header line is expected; tolerated if absent),
    ``"none"`` (no header; one is rejected as ``unexpected_header``) or
    ``"optional"`` (either, silently). ``aliases`` lists other accepted header
    names per column (compared lower-case, stripped). ``extra_columns`` allows
    header columns beyond ``columns`` (then ignored). ``text_columns``: the
    free-text columns (display text: titles, names, tags, genres), where a
    control character is replaced by U+FFFD; every other column is an identifier
    or a number, where one rejects the record (``control_character``).
    """

    columns: tuple[str, ...]
    sep: str
    header: Literal["required", "none", "optional"]
    quoting: bool = False
    encoding: Literal["utf-8", "latin-1"] = "utf-8"
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    extra_columns: bool = False
    text_columns: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.text_columns) - set(self.columns)
        if unknown:
            raise ValueError(f"text_columns {sorted(unknown)} are not columns of the spec {self.columns}")

    def names_for(self, column: str) -> tuple[str, ...]:
        return (column.lower(), *(a.lower() for a in self.aliases.get(column, ())))

    def layout(self) -> str:
        return _SEP_NAMES.get(self.sep, repr(self.sep)) + "-separated"


@dataclass
class ReaderStats:
    """What the reader saw in one file (reported per file)."""

    header: str = "absent"  # present | missing (expected, absent) | absent (none expected) | unexpected
    bom: bool = False
    encoding_fallback_lines: int = 0
    trailing_newline: bool = True
    physical_lines: int = 0
    header_notes: list[str] = field(default_factory=list)  # e.g. an alias column ignored (reported if any)
    control_characters_replaced: int = 0  # by U+FFFD, in the free-text fields of the records passed on
    rows_with_control_characters_replaced: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "header": self.header,
            "bom": self.bom,
            "encoding_fallback_lines": self.encoding_fallback_lines,
            "trailing_newline": self.trailing_newline,
            "physical_lines": self.physical_lines,
            **self.control_dict(),
            **({"header_notes": list(self.header_notes)} if self.header_notes else {}),
        }

    def control_dict(self) -> dict[str, int]:
        """The control-character replacement counts (all an input that is not a text file reports)."""
        return {
            "control_characters_replaced": self.control_characters_replaced,
            "rows_with_control_characters_replaced": self.rows_with_control_characters_replaced,
        }


@dataclass(frozen=True)
class RecordChunk:
    """One chunk of records.

    ``fields``: spec columns (string, stripped) plus ``_line`` (int64) and
    ``_raw`` (string), one row per record with the expected field count, in file
    order. ``rejects``: ``line``, ``reason``, ``raw`` for the others.
    ``last_line``: the physical line number of an unterminated final line if it
    is in this chunk (adapters report a failing one as ``truncated_last_line``).
    """

    fields: pa.Table
    rejects: pa.Table
    last_line: int | None = None

    @property
    def rows_read(self) -> int:
        return self.fields.num_rows + self.rejects.num_rows


# --------------------------------------------------------------------------- lines


def _decode(data: bytes, encoding: str, stats: ReaderStats) -> str:
    if encoding == "latin-1":
        text = data.decode("latin-1")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            parts = []
            for raw in data.split(b"\n"):
                try:
                    parts.append(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    parts.append(raw.decode("latin-1"))
                    stats.encoding_fallback_lines += 1
            text = "\n".join(parts)
    if "\r" not in text:
        return text
    text = text.replace("\r\n", "\n")
    # ``data`` always ends just before a newline (or at the end of the file): a final CR is the CR of a
    # CRLF cut by the block boundary (inside a quoted field it would otherwise be kept)
    return text[:-1] if text.endswith("\r") else text


def _check_head(block: bytes, name: str, encoding: str) -> None:
    if block.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputFormatError(f"{name}: line 1: the file is UTF-16 encoded (byte-order mark {block[:2].hex()}); expected UTF-8 text")
    if block.startswith(_GZIP_MAGIC):
        raise InputFormatError(f"{name}: line 1: the data is gzip-compressed (bytes 1f 8b); expected plain text")


def _check_nul(data: bytes, name: str, first_line: int) -> None:
    """Refuse a NUL byte anywhere in the file (every encoding): the file is binary, UTF-16 or corrupt."""
    pos = data.find(b"\x00")
    if pos >= 0:
        line = first_line + data.count(b"\n", 0, pos)
        raise InputFormatError(f"{name}: line {line}: NUL byte found; expected a text file, this looks binary "
                               f"(or UTF-16, or corrupt)")


# C0 controls that are never text: anywhere in a field (leading / trailing ones too, which the
# whitespace stripping would otherwise drop silently: U+001C-U+001F are whitespace); VT, FF and a
# lone CR only inside the stripped value (at its ends they are whitespace). TAB and LF are data
# (TSV separator, CSV multi-line fields); NUL refuses the whole file (_check_nul).
_CONTROL_ANY = r"[\x00-\x08\x0e-\x1f\x7f]"
_CONTROL_INNER = r"[\x0b\x0c\r]"
_CONTROL_PREFILTER = r"[\x00-\x08\x0b-\x1f\x7f]"  # a superset of both, on the whole record
REPLACEMENT_CHARACTER = "\ufffd"


def strip_fields(fields: pa.Table, spec: TableSpec, stats: ReaderStats) -> tuple[pa.Table, np.ndarray]:
    """Strip the ``spec.columns`` of ``fields`` of whitespace and apply the control-character rule.

    ``fields``: the raw (unstripped) field values of each record in the spec columns, and ``_raw``,
    the record's text (any superset of its fields, looked at first so that clean data costs one
    scan). In a ``spec.text_columns`` field each control character is replaced by U+FFFD (counted
    in ``stats``, for the records passed on); in any other field one marks the record. Returns the
    stripped table and the mask of marked records (rejected as ``control_character`` by the caller).
    """
    n = fields.num_rows
    bad = np.zeros(n, dtype=bool)
    replaced = np.zeros(n, dtype=np.int64)
    suspect = bool(n) and bool(pc.any(pc.match_substring_regex(fields["_raw"], _CONTROL_PREFILTER)).as_py())

    def count(arr: pa.Array | pa.ChunkedArray, pattern: str) -> np.ndarray:
        return np.asarray(pc.count_substring_regex(arr, pattern).to_numpy(zero_copy_only=False), dtype=np.int64)

    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for c in spec.columns:
        raw = fields[c]
        if suspect and c in spec.text_columns:
            replaced += count(raw, _CONTROL_ANY)
            value = pc.utf8_trim_whitespace(pc.replace_substring_regex(raw, _CONTROL_ANY, REPLACEMENT_CHARACTER))
            replaced += count(value, _CONTROL_INNER)
            value = pc.replace_substring_regex(value, _CONTROL_INNER, REPLACEMENT_CHARACTER)
        else:
            value = pc.utf8_trim_whitespace(raw)
            if suspect:
                hit = pc.or_(pc.match_substring_regex(raw, _CONTROL_ANY), pc.match_substring_regex(value, _CONTROL_INNER))
                bad |= np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
        out[c] = value
    stats.control_characters_replaced += int(replaced[~bad].sum())
    stats.rows_with_control_characters_replaced += int((replaced[~bad] > 0).sum())
    rest = {c: fields[c] for c in fields.column_names if c not in out}
    return pa.table({**out, **rest}), bad


def _iter_line_blocks(fh: BinaryIO, name: str, encoding: str, stats: ReaderStats,
                      max_line: int = DEFAULT_POLICY.max_line_bytes,
                      too_long: list[tuple[int, str, str]] | None = None) -> Iterator[tuple[int, str, bool]]:
    """Yield ``(first_line_number, text, final)`` where ``text`` holds whole lines without the last newline.

    ``final`` marks a block whose last line had no terminating newline. A physical
    line longer than ``max_line`` bytes is never held whole (at most ``max_line``
    plus one block is in memory): it is left out of the text, and appended to
    ``too_long`` as ``(line, "line_too_long", its first LONG_LINE_PREFIX bytes)``
    before the next block is yielded.
    """
    long_lines = too_long if too_long is not None else []

    def reject(no: int, start: bytes) -> None:
        long_lines.append((no, "line_too_long", start[:LONG_LINE_PREFIX].decode(encoding, errors="replace")))

    def split_long(first_no: int, body: bytes) -> Iterator[tuple[int, str, bool]]:
        """``body`` (whole lines) may hold lines above the limit: yield the runs of lines between them."""
        nl = np.flatnonzero(np.frombuffer(body, np.uint8) == 10)
        starts = np.concatenate(([0], nl + 1))
        ends = np.concatenate((nl, [len(body)]))
        prev = 0
        for i in np.flatnonzero(ends - starts > max_line).tolist():
            if i > prev:
                yield first_no + prev, _decode(body[starts[prev]:ends[i - 1]], encoding, stats), False
            reject(first_no + i, body[starts[i]:starts[i] + LONG_LINE_PREFIX])
            prev = i + 1
        if prev < len(starts):
            yield first_no + prev, _decode(body[starts[prev]:], encoding, stats), False

    line_no = 1
    carry = b""
    skipping: bytes | None = None  # the start of a too-long line (number line_no) being read past
    first = True
    while True:
        block = fh.read(BLOCK_BYTES)
        if first:
            first = False
            _check_head(block, name, encoding)
            if block.startswith(_UTF8_BOM):
                stats.bom = True
                block = block[len(_UTF8_BOM):]
        if not block:
            if skipping is not None:
                stats.trailing_newline = False
                reject(line_no, skipping)
                stats.physical_lines = line_no
            elif carry:
                stats.trailing_newline = False
                text = _decode(carry, encoding, stats)
                if text.endswith("\r"):
                    text = text[:-1]
                stats.physical_lines = line_no + text.count("\n")
                yield line_no, text, True
            else:
                stats.physical_lines = line_no - 1
            return
        _check_nul(block, name, line_no)  # the carry (no newline in it) was checked with its own block
        if skipping is not None:
            nl = block.find(b"\n")
            if nl < 0:
                continue
            reject(line_no, skipping)
            skipping = None
            line_no += 1
            block = block[nl + 1:]
            if not block:
                continue
        data = carry + block if carry else block
        cut = data.rfind(b"\n")
        if cut < 0:
            carry, skipping = (b"", data[:LONG_LINE_PREFIX]) if len(data) > max_line else (data, None)
            continue
        tail = data[cut + 1:]
        if cut > max_line:  # cheap test first: only a body longer than the limit can hold a too-long line
            yield from split_long(line_no, data[:cut])
        else:
            yield line_no, _decode(data[:cut], encoding, stats), False
        line_no += data.count(b"\n", 0, cut + 1)
        carry, skipping = (b"", tail[:LONG_LINE_PREFIX]) if len(tail) > max_line else (tail, None)


class _Assembler:
    """Turn physical lines into records (joining quoted multi-line CSV records)."""

    def __init__(self, quoting: bool) -> None:
        self.quoting = quoting
        self.pending: list[tuple[int, str]] = []
        self.quotes = 0

    def feed(self, first_no: int, text: str) -> tuple[list[str], np.ndarray, list[tuple[int, str, str]]]:
        lines = text.split("\n")
        if not self.quoting or (not self.pending and '"' not in text):
            return lines, np.arange(first_no, first_no + len(lines), dtype=np.int64), []
        return self._slow(deque(zip(range(first_no, first_no + len(lines)), lines)), eof=False)

    def finish(self) -> tuple[list[str], np.ndarray, list[tuple[int, str, str]]]:
        if not self.pending:
            return [], np.empty(0, np.int64), []
        return self._slow(deque(), eof=True)

    def _slow(self, queue: deque[tuple[int, str]], eof: bool) -> tuple[list[str], np.ndarray, list[tuple[int, str, str]]]:
        recs: list[str] = []
        nums: list[int] = []
        rejects: list[tuple[int, str, str]] = []
        while True:
            if not queue:
                if eof and self.pending:
                    self._overflow(queue, rejects)
                    continue
                break
            no, line = queue.popleft()
            count = line.count('"')
            if self.pending:
                self.pending.append((no, line))
                self.quotes += count
                if self.quotes % 2 == 0:
                    recs.append("\n".join(text for _, text in self.pending))
                    nums.append(self.pending[0][0])
                    self.pending = []
                elif len(self.pending) > MAX_RECORD_LINES:
                    self._overflow(queue, rejects)
            elif count % 2 == 0:
                recs.append(line)
                nums.append(no)
            else:
                self.pending = [(no, line)]
                self.quotes = count
        return recs, np.asarray(nums, dtype=np.int64), rejects

    def _overflow(self, queue: deque[tuple[int, str]], rejects: list[tuple[int, str, str]]) -> None:
        first_no, first_line = self.pending[0]
        rejects.append((first_no, "unterminated_quote", first_line))
        queue.extendleft(reversed(self.pending[1:]))
        self.pending = []
        self.quotes = 0


# --------------------------------------------------------------------------- fields


def _split_one(rec: str, spec: TableSpec) -> list[str] | None:
    if spec.quoting and '"' in rec:
        try:
            rows = list(csv.reader([rec], delimiter=spec.sep, strict=True))
        except csv.Error:
            return None
        return rows[0] if rows else [""]
    return rec.split(spec.sep)


def _norm_name(s: str) -> str:
    return s.strip().strip('"').strip().lower()


def _resolve_header(first: str, line_no: int, spec: TableSpec, name: str, stats: ReaderStats) -> tuple[list[int], bool, int]:
    """Decide whether the first record is a header.

    Returns ``(positions, consumed, width)``: the index of each spec column in a
    record, whether the first record was a header (and so is not data), and the
    number of fields a record must have.
    """
    fields = _split_one(first, spec) or [first]
    normed = [_norm_name(f) for f in fields]
    known = {n for c in spec.columns for n in spec.names_for(c)}
    headerish = [n for n in normed if n in known and n != ""]
    default = list(range(len(spec.columns)))
    if spec.header == "none":
        if headerish:
            stats.header = "unexpected"
            return default, False, len(spec.columns)  # reported as unexpected_header by the caller
        stats.header = "absent"
        return default, False, len(spec.columns)
    if not headerish:
        if len(fields) == 1 and len(spec.columns) > 1:
            other = [s for s in _SEP_NAMES if s != spec.sep and s in first]
            hint = f" (it looks {_SEP_NAMES[other[0]]}-separated)" if other else ""
            raise InputFormatError(
                f"{name}: line {line_no}: expected a {spec.layout()} header with columns "
                f"{','.join(spec.columns)}; found {first[:200]!r}{hint}"
            )
        if spec.header == "required" and not any(ch.isdigit() for ch in first):
            raise InputFormatError(
                f"{name}: line {line_no}: header has unknown columns; expected a {spec.layout()} header with "
                f"columns {','.join(spec.columns)}; found {first[:300]!r}"
            )
        stats.header = "missing" if spec.header == "required" else "absent"
        return default, False, len(spec.columns)
    positions = []
    missing = []
    ambiguous = []
    shadowed = []
    for col in spec.columns:
        canonical, *aliases = spec.names_for(col)
        exact = [i for i, n in enumerate(normed) if n == canonical]
        alias = [i for i, n in enumerate(normed) if n in aliases]
        if len(exact) > 1 or (not exact and len(alias) > 1):
            found = exact if exact else alias
            ambiguous.append(f"{col} is given by {len(found)} columns "
                             f"({', '.join(f'{fields[i].strip()!r} (column {i + 1})' for i in found)})")
        elif exact:
            positions.append(exact[0])  # the canonical name wins wherever an alias stands
            shadowed += [(i, col) for i in alias]
        elif alias:
            positions.append(alias[0])
        else:
            missing.append(col)
    if ambiguous or (shadowed and not spec.extra_columns):
        what = "; ".join(ambiguous + [f"{col} is given both by its own column and by {fields[i].strip()!r} "
                                      f"(column {i + 1}, an alias of {col})" for i, col in shadowed])
        raise InputFormatError(
            f"{name}: line {line_no}: header is ambiguous: {what}; expected one column per field of "
            f"{','.join(spec.columns)}. Remove or rename the duplicate column"
        )
    if missing or (not spec.extra_columns and len(fields) != len(spec.columns)):
        other = [s for s in _SEP_NAMES if s != spec.sep and s in first]
        hint = f" (it looks {_SEP_NAMES[other[0]]}-separated)" if other and len(fields) == 1 else ""
        what = f"missing column(s) {', '.join(missing)}" if missing else f"{len(fields)} columns instead of {len(spec.columns)}"
        raise InputFormatError(
            f"{name}: line {line_no}: header has {what}; expected a {spec.layout()} header with columns "
            f"{','.join(spec.columns)}{' (extra columns allowed)' if spec.extra_columns else ''}; found "
            f"{','.join(fields)[:300]!r}{hint}"
        )
    stats.header = "present"
    stats.header_notes = [f"{name}: line {line_no}: column {i + 1} {fields[i].strip()!r} (an alias of {col}) is "
                          f"ignored as an extra column: the file also has the column {col}, which is used"
                          for i, col in shadowed]
    return positions, True, len(fields)


def _to_table(recs: list[str], nums: np.ndarray, spec: TableSpec, positions: list[int], width: int,
              last_line: int | None, stats: ReaderStats) -> tuple[pa.Table, pa.Table]:
    """Split records into fields; return (the fields of the good records, stripped, and the rejects table)."""
    names = list(spec.columns)
    arr = pa.array(recs, pa.string())
    lines = pa.array(nums, pa.int64())
    blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
    if spec.quoting:
        quoted = pc.match_substring(arr, '"')
    else:
        quoted = pa.array(np.zeros(len(recs), dtype=bool))
    fast = pc.and_(pc.invert(blank), pc.invert(quoted))

    f_arr = arr.filter(fast)
    f_lines = lines.filter(fast)
    parts = pc.split_pattern(f_arr, spec.sep)
    ok = pc.equal(pc.list_value_length(parts), width)
    good_parts = parts.filter(ok)
    cols = {n: pc.list_element(good_parts, p) for n, p in zip(names, positions)}  # stripped by strip_fields
    cols["_line"] = f_lines.filter(ok)
    cols["_raw"] = f_arr.filter(ok)
    good = pa.table(cols)

    rej_line = [f_lines.filter(pc.invert(ok))]
    rej_raw = [f_arr.filter(pc.invert(ok))]
    rej_reason = [pa.array(["wrong_field_count"] * (len(rej_line[0])), pa.string())]
    if pc.any(blank).as_py():
        rej_line.append(lines.filter(blank))
        rej_raw.append(arr.filter(blank))
        rej_reason.append(pa.array(["empty_line"] * len(rej_line[-1]), pa.string()))

    q_idx = np.flatnonzero(np.asarray(quoted.to_numpy(zero_copy_only=False)) & ~np.asarray(blank.to_numpy(zero_copy_only=False)))
    if len(q_idx):
        slow_rows: dict[str, list] = {n: [] for n in [*names, "_line", "_raw"]}
        bad_l, bad_r, bad_w = [], [], []
        for i in q_idx:
            rec = recs[i]
            fields = _split_one(rec, spec)
            if fields is None or len(fields) != width:
                bad_l.append(int(nums[i]))
                bad_r.append(rec)
                bad_w.append("malformed_quoting" if fields is None else "wrong_field_count")
                continue
            for n, p in zip(names, positions):
                slow_rows[n].append(fields[p])
            slow_rows["_line"].append(int(nums[i]))
            slow_rows["_raw"].append(rec)
        if slow_rows["_line"]:
            slow = pa.table({n: pa.array(v, pa.int64() if n == "_line" else pa.string()) for n, v in slow_rows.items()})
            good = pa.concat_tables([good, slow]).sort_by("_line")
        rej_line.append(pa.array(bad_l, pa.int64()))
        rej_raw.append(pa.array(bad_r, pa.string()))
        rej_reason.append(pa.array(bad_w, pa.string()))

    good, bad = strip_fields(good, spec, stats)
    if bad.any():
        mask = pa.array(bad)
        rej_line.append(good["_line"].filter(mask).combine_chunks())
        rej_raw.append(good["_raw"].filter(mask).combine_chunks())
        rej_reason.append(pa.array(["control_character"] * int(bad.sum()), pa.string()))
        good = good.filter(pa.array(~bad))

    rejects = pa.table({
        "line": pa.concat_arrays(rej_line),
        "reason": pa.concat_arrays(rej_reason),
        "raw": pa.concat_arrays(rej_raw),
    })
    if last_line is not None and rejects.num_rows:
        is_last = pc.and_(pc.equal(rejects["line"], last_line), pc.equal(rejects["reason"], "wrong_field_count"))
        rejects = rejects.set_column(1, "reason", pc.if_else(is_last, "truncated_last_line", rejects["reason"]))
    return good, rejects.sort_by("line")


def _rejects_table(rows: list[tuple[int, str, str]]) -> pa.Table:
    return pa.table({
        "line": pa.array([r[0] for r in rows], pa.int64()),
        "reason": pa.array([r[1] for r in rows], pa.string()),
        "raw": pa.array([r[2] for r in rows], pa.string()),
    })


def empty_rejects() -> pa.Table:
    return REJECT_SCHEMA.empty_table()


def iter_records(inp: InputFile, spec: TableSpec, chunk_rows: int, stats: ReaderStats | None = None,
                 policy: InputPolicy | None = None) -> Iterator[RecordChunk]:
    """Stream ``inp`` as records of ``spec`` in chunks of at most ``chunk_rows`` records.

    ``policy`` (default :data:`DEFAULT_POLICY`) says where files may be and the
    limits on line length and decompression.

    Raises :class:`InputFormatError` for a missing or unreadable file, a bad
    header, or when none of the first :data:`SNIFF_RECORDS` records has the
    expected number of fields (wrong separator or not this kind of file).
    """
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive (got {chunk_rows})")
    stats = stats if stats is not None else ReaderStats()
    name = inp.name
    asm = _Assembler(spec.quoting)
    positions: list[int] | None = None
    width = len(spec.columns)
    buf_recs: list[str] = []
    buf_nums: list[np.ndarray] = []
    pre_rejects: list[tuple[int, str, str]] = []
    last_line: int | None = None
    sniffed = 0
    sniff_ok = False
    first_wrong: dict | None = None

    def emit(recs: list[str], nums: np.ndarray, extra: list[tuple[int, str, str]]) -> RecordChunk:
        nonlocal sniffed, sniff_ok, first_wrong
        assert positions is not None
        ll = last_line if (last_line is not None and len(nums) and nums[-1] == last_line) else None
        good, rej = _to_table(recs, nums, spec, positions, width, ll, stats)
        if extra:
            rej = pa.concat_tables([rej, _rejects_table(extra)]).sort_by("line")
        if not sniff_ok:
            if good.num_rows:
                sniff_ok = True
            else:
                sniffed += rej.num_rows
                wrong = rej.filter(pc.equal(rej["reason"], "wrong_field_count"))
                if first_wrong is None and wrong.num_rows:
                    first_wrong = wrong.slice(0, 1).to_pylist()[0]
                if sniffed >= SNIFF_RECORDS:
                    sniff_fail()
        return RecordChunk(good, rej, ll)

    def skip_leading_blanks(recs: list[str], nums: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Before the header is resolved, reject blank records as ``empty_line`` (a header is never blank)."""
        i = 0
        while i < len(recs) and not recs[i].strip():
            pre_rejects.append((int(nums[i]), "empty_line", recs[i]))
            i += 1
        return (recs[i:], nums[i:]) if i else (recs, nums)

    def sniff_fail() -> None:
        if first_wrong is None:
            return
        row = first_wrong
        n = len(_split_one(row["raw"], spec) or [])
        other = [s for s in _SEP_NAMES if s != spec.sep and s in row["raw"]]
        hint = f" (it looks {_SEP_NAMES[other[0]]}-separated)" if other else ""
        raise InputFormatError(
            f"{name}: line {row['line']}: expected {width} {spec.layout()} fields "
            f"({','.join(spec.columns)}); found {n} field(s) in {row['raw'][:200]!r}{hint}, and no "
            f"record among the first {sniffed} has the expected layout"
        )

    policy = policy or DEFAULT_POLICY
    too_long: list[tuple[int, str, str]] = []
    fh = inp.open(policy)
    try:
        for first_no, text, final in _iter_line_blocks(fh, name, spec.encoding, stats, policy.max_line_bytes, too_long):
            pre_rejects.extend(too_long)  # the too-long lines before this block
            too_long.clear()
            if final:
                last_line = first_no + text.count("\n")
            recs, nums, rej = asm.feed(first_no, text)
            pre_rejects.extend(rej)
            if positions is None:
                recs, nums = skip_leading_blanks(recs, nums)
            if positions is None and len(recs):
                positions, consumed, width = _resolve_header(recs[0], int(nums[0]), spec, name, stats)
                if consumed:
                    recs, nums = recs[1:], nums[1:]
                elif stats.header == "unexpected":
                    pre_rejects.append((int(nums[0]), "unexpected_header", recs[0]))
                    recs, nums = recs[1:], nums[1:]
            buf_recs.extend(recs)
            buf_nums.append(nums)
            while len(buf_recs) >= chunk_rows:
                allnums = np.concatenate(buf_nums)
                cut_no = allnums[chunk_rows - 1]
                mine = [r for r in pre_rejects if r[0] <= cut_no]
                pre_rejects = [r for r in pre_rejects if r[0] > cut_no]
                yield emit(buf_recs[:chunk_rows], allnums[:chunk_rows], mine)
                buf_recs = buf_recs[chunk_rows:]
                buf_nums = [allnums[chunk_rows:]]
        pre_rejects.extend(too_long)
        recs, nums, rej = asm.finish()
        pre_rejects.extend(rej)
        if positions is None:
            recs, nums = skip_leading_blanks(recs, nums)
            if len(recs):
                positions, consumed, width = _resolve_header(recs[0], int(nums[0]), spec, name, stats)
                if consumed:
                    recs, nums = recs[1:], nums[1:]
            else:  # no record at all (empty file, or blank lines only): an expected header is missing
                positions = list(range(width))
                stats.header = "missing" if spec.header == "required" else "absent"
        buf_recs.extend(recs)
        buf_nums.append(nums)
        allnums = np.concatenate(buf_nums) if buf_nums else np.empty(0, np.int64)
        while len(buf_recs) > chunk_rows:
            cut_no = allnums[chunk_rows - 1]
            mine = [r for r in pre_rejects if r[0] <= cut_no]
            pre_rejects = [r for r in pre_rejects if r[0] > cut_no]
            yield emit(buf_recs[:chunk_rows], allnums[:chunk_rows], mine)
            buf_recs, allnums = buf_recs[chunk_rows:], allnums[chunk_rows:]
        if buf_recs or pre_rejects:
            yield emit(buf_recs, allnums, pre_rejects)
        if not sniff_ok:
            sniff_fail()
    finally:
        fh.close()

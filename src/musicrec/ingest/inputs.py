"""Raw input files: where they may be (:class:`InputPolicy`) and how they are opened (:class:`InputFile`).

An input is a plain file, a ``.gz``/``.bz2``/``.xz`` file (decompressed by name), a
member of a ``.zip`` archive or a member of a tar archive (``.tar``, ``.tar.gz``, ...: read as a stream); compressed data is read streaming, through a wrapper
that enforces the ``data.*`` size and ratio limits while it is read and turns broken
data into :class:`InputFormatError` naming the file (and member). Encrypted members
and unsupported zip methods are refused with what to do; gzip data and zip archives
under a plain name are refused too. :class:`InputFormatError`, the error for every
bad raw input (one paragraph naming the file and what was expected), is defined here.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

from musicrec.config import DataParams
from musicrec.errors import UserError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"


class InputFormatError(UserError, ValueError):
    """A raw input file is missing or not in the expected format.

    The message names the file, the line (and column where relevant) and what
    was expected, in one paragraph.
    """


_DATA_DEFAULTS = {name: f.default for name, f in DataParams.model_fields.items()}  # one place for the limits


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
    The defaults are the ``data`` section's (:class:`musicrec.config.DataParams`), written once there.
    """

    root: Path | None = None
    allow_absolute_paths: bool = _DATA_DEFAULTS["allow_absolute_paths"]
    max_line_bytes: int = _DATA_DEFAULTS["max_line_bytes"]
    max_decompressed_bytes: int = _DATA_DEFAULTS["max_decompressed_bytes"]
    max_compression_ratio: float = _DATA_DEFAULTS["max_compression_ratio"]
    max_quarantined_share: float = _DATA_DEFAULTS["max_quarantined_share"]
    quarantine_share_min_rows: int = _DATA_DEFAULTS["quarantine_share_min_rows"]

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


#: Tar archives (plain or compressed): read in place as a stream, one member at a time (:class:`InputFile`
#: with a ``member``); a source published as one (Audioscrobbler) looks for it by name.
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def is_tar(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


@dataclass(frozen=True)
class InputFile:
    """A raw input file: a path (plain, ``.gz``, ``.bz2``, ``.xz`` or ``.zip``), or a member of a zip or tar archive.

    A ``.zip`` path without ``member`` reads the member named like the path
    without ``.zip`` (any folder), or else the archive's only file. A tar path
    (:data:`TAR_SUFFIXES`) needs a ``member``: the first regular file of that base name.
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
        what = ("the tar archive" if is_tar(self.path) else "the zip archive") if self.member else "the input file"
        return (policy or DEFAULT_POLICY).check_path(self.path, what)

    def open(self, policy: InputPolicy | None = None) -> BinaryIO:
        """Open for binary reading, decompressing by name; refuse compressed-under-wrong-name and binary files."""
        policy = policy or DEFAULT_POLICY
        path = self.checked_path(policy)
        suffix = self.path.suffix.lower()
        if is_tar(self.path):
            if self.member is None:
                raise ValueError(f"{self.path}: a tar archive is read one member at a time; give the member")
            return _open_tar_member(self.path, path, self.member, policy)
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
        if head.startswith(GZIP_MAGIC):
            fh.close()
            raise InputFormatError(
                f"{self.path}: line 1: the file is gzip-compressed (it starts with bytes 1f 8b) but its "
                f"name does not end in .gz; expected plain text. Decompress it (gunzip) or rename it "
                f"to {self.path.name}.gz"
            )
        if head.startswith(ZIP_MAGIC):
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
_DATA_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, NotImplementedError,
                tarfile.TarError)


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


def _open_tar_member(path: Path, full: Path, member: str, policy: InputPolicy) -> BinaryIO:
    """Open the first regular file named ``member`` (base name, any folder; ``__MACOSX`` and hidden files
    aside) of the tar archive ``path`` (resolved: ``full``; plain or gzip/bzip2/xz-compressed), as a stream:
    the members before it are read past, never extracted. Limits and corrupt data as for zip members."""
    raw = _Counting(open(full, "rb"))
    name = path.name.lower()
    suffix = ".gz" if name.endswith(".tgz") else Path(name).suffix
    try:  # our decompressors, not tarfile's: they detect a compressed stream cut short (tarfile would just stop)
        stream = _DECOMPRESSORS[suffix][1](raw) if suffix in _DECOMPRESSORS else raw
        tf = tarfile.open(fileobj=stream, mode="r|")
    except _DATA_ERRORS as err:
        raw.close()
        if not isinstance(err, tarfile.TarError):
            raise _corrupt(f"{path}", "tar archive", err) from None
        raise InputFormatError(f"{path}: not a valid tar archive ({type(err).__name__}: {err}); expected the "
                               f"archive as published. Download it again and check its checksum") from None
    try:
        seen: list[str] = []
        try:
            for info in tf:
                base = info.name.rsplit("/", 1)[-1]
                if info.isfile() and base == member and "__MACOSX" not in info.name and not base.startswith("."):
                    where = f"{path}: member {info.name!r}"
                    _check_limits(where, info.size, full.stat().st_size, policy)
                    inner = tf.extractfile(info)
                    assert inner is not None  # a regular file
                    return _Guarded(inner, raw, where, "tar member", policy, closers=(tf,))  # type: ignore[arg-type]
                if info.isfile() and len(seen) < 30:
                    seen.append(info.name)
        except _DATA_ERRORS as err:
            raise _corrupt(f"{path}", "tar archive", err) from None
        raise InputFormatError(f"{path}: no member named {member!r} in the tar archive; expected the archive as "
                               f"published, with that file. Found: {seen}")
    except BaseException:
        tf.close()
        raw.close()
        raise

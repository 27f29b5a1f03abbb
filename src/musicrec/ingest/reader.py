"""Robust streaming readers for the delimited text files of the raw music data sets.

One function does the reading for every adapter: :func:`iter_records` streams a
text file (plain; ``.gz``, ``.bz2``, ``.xz`` or ``.zip`` by name; or a member of a zip archive) in chunks of
``chunk_rows`` records and hands back, per chunk, an Arrow table of the records
that have the expected number of fields and a table of the records it rejected.
Nothing is ever loaded whole: bytes are read in blocks of :data:`~musicrec.ingest.lines.BLOCK_BYTES`.

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
  Ignored extra columns are not checked. See :func:`~musicrec.ingest.fields.strip_fields`.
* Line ends: LF and CRLF (the CR is removed, also where a CRLF ends a read
  block inside a quoted field); a final line without a newline is
  read, and if it does not have the expected fields it is rejected as
  ``truncated_last_line``.
* Quoting (CSV specs only): RFC 4180 double quotes, separators and newlines
  inside quoted fields, ``""`` escapes. A record spanning several physical lines
  is reported at the physical line where it starts. An opening quote that is not
  closed within :data:`~musicrec.ingest.lines.MAX_RECORD_LINES` lines (or at end of file) rejects only
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
* Zip members (see :mod:`musicrec.ingest.inputs`): corrupt member data (bad CRC-32, broken deflate stream, data cut
  short) raises :class:`InputFormatError` naming the archive and the member;
  so do encrypted members and unsupported methods (Deflate64, PPMd, ...), with
  what to do. Broken ``.gz``/``.bz2``/``.xz`` data likewise names the file.
* Limits (:class:`~musicrec.ingest.inputs.InputPolicy`, the ``data.*`` params): a physical line longer
  than ``max_line_bytes`` is rejected as ``line_too_long`` (its first
  :data:`~musicrec.ingest.lines.LONG_LINE_PREFIX` bytes kept) without ever being held whole; a
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

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.fields import split_record, split_records
from musicrec.ingest.header import resolve_header
from musicrec.ingest.inputs import DEFAULT_POLICY, InputFile, InputFormatError, InputPolicy
from musicrec.ingest.lines import RecordAssembler, iter_line_blocks
from musicrec.ingest.spec import ReaderStats, TableSpec, other_separator

SNIFF_RECORDS = 1000


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


Reject = tuple[int, str, str]  # (physical line, reason, raw text) of a record rejected before it is split


def _rejects_table(rows: list[Reject]) -> pa.Table:
    return pa.table({
        "line": pa.array([r[0] for r in rows], pa.int64()),
        "reason": pa.array([r[1] for r in rows], pa.string()),
        "raw": pa.array([r[2] for r in rows], pa.string()),
    })


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
    policy = policy or DEFAULT_POLICY
    chunker = _Chunker(inp.name, spec, chunk_rows, stats)
    assembler = RecordAssembler(spec.quoting)
    too_long: list[Reject] = []  # filled by iter_line_blocks: the too-long lines before the block it yields
    fh = inp.open(policy)
    try:
        for first_no, text, final in iter_line_blocks(fh, inp.name, spec.encoding, stats, policy.max_line_bytes,
                                                      too_long):
            chunker.rejects.extend(too_long)
            too_long.clear()
            if final:
                chunker.last_line = first_no + text.count("\n")
            yield from chunker.add(*assembler.feed(first_no, text))
        chunker.rejects.extend(too_long)
        yield from chunker.add(*assembler.finish(), at_end=True)
    finally:
        fh.close()


class _Chunker:
    """Records in, :class:`RecordChunk` out: resolves the header on the first record, cuts chunks of
    ``chunk_rows`` records (each with the rejects of its lines), and refuses a file whose first
    :data:`SNIFF_RECORDS` records all have the wrong number of fields."""

    def __init__(self, name: str, spec: TableSpec, chunk_rows: int, stats: ReaderStats) -> None:
        self.name = name
        self.spec = spec
        self.chunk_rows = chunk_rows
        self.stats = stats
        self.positions: list[int] | None = None  # of each spec column in a record, once the header is resolved
        self.width = len(spec.columns)  # the number of fields a record must have
        self.recs: list[str] = []  # records not yet in a chunk
        self.nums: list[np.ndarray] = []  # and their physical line numbers
        self.rejects: list[Reject] = []  # rejected lines not yet in a chunk
        self.last_line: int | None = None  # the final line, when it has no newline
        self.sniffed = 0
        self.sniff_ok = False
        self.first_wrong: dict | None = None

    def add(self, recs: list[str], nums: np.ndarray, rejects: list[Reject], at_end: bool = False) -> Iterator[RecordChunk]:
        """Take the next records (and the rejects of the lines they came from); yield the chunks now full.

        ``at_end``: these are the last; every record and reject left is yielded.
        """
        self.rejects.extend(rejects)
        if self.positions is None:
            recs, nums = self._skip_leading_blanks(recs, nums)
            if len(recs):
                recs, nums = self._take_header(recs, nums)
            elif at_end:  # no record at all (empty file, or blank lines only): an expected header is missing
                self.positions = list(range(self.width))
                self.stats.header = "missing" if self.spec.header == "required" else "absent"
        self.recs.extend(recs)
        self.nums.append(nums)
        # the last chunk takes every reject left, so at the end a full chunk is cut only if more records follow it
        while len(self.recs) > self.chunk_rows or (len(self.recs) == self.chunk_rows and not at_end):
            allnums = np.concatenate(self.nums)
            cut_no = allnums[self.chunk_rows - 1]
            mine = [r for r in self.rejects if r[0] <= cut_no]
            self.rejects = [r for r in self.rejects if r[0] > cut_no]
            yield self._chunk(self.recs[:self.chunk_rows], allnums[:self.chunk_rows], mine)
            self.recs = self.recs[self.chunk_rows:]
            self.nums = [allnums[self.chunk_rows:]]
        if at_end:
            if self.recs or self.rejects:
                yield self._chunk(self.recs, np.concatenate(self.nums), self.rejects)
            if not self.sniff_ok:
                self._sniff_fail()

    def _skip_leading_blanks(self, recs: list[str], nums: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Before the header is resolved, reject blank records as ``empty_line`` (a header is never blank)."""
        i = 0
        while i < len(recs) and not recs[i].strip():
            self.rejects.append((int(nums[i]), "empty_line", recs[i]))
            i += 1
        return (recs[i:], nums[i:]) if i else (recs, nums)

    def _take_header(self, recs: list[str], nums: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Resolve the header on the first record; the records that are data."""
        self.positions, consumed, self.width = resolve_header(recs[0], int(nums[0]), self.spec, self.name, self.stats)
        if consumed:
            return recs[1:], nums[1:]
        if self.stats.header == "unexpected":
            self.rejects.append((int(nums[0]), "unexpected_header", recs[0]))
            return recs[1:], nums[1:]
        return recs, nums

    def _chunk(self, recs: list[str], nums: np.ndarray, extra: list[Reject]) -> RecordChunk:
        assert self.positions is not None
        ll = self.last_line if (self.last_line is not None and len(nums) and nums[-1] == self.last_line) else None
        good, rej = split_records(recs, nums, self.spec, self.positions, self.width, ll, self.stats)
        if extra:
            rej = pa.concat_tables([rej, _rejects_table(extra)]).sort_by("line")
        if not self.sniff_ok:
            if good.num_rows:
                self.sniff_ok = True
            else:
                self.sniffed += rej.num_rows
                wrong = rej.filter(pc.equal(rej["reason"], "wrong_field_count"))
                if self.first_wrong is None and wrong.num_rows:
                    self.first_wrong = wrong.slice(0, 1).to_pylist()[0]
                if self.sniffed >= SNIFF_RECORDS:
                    self._sniff_fail()
        return RecordChunk(good, rej, ll)

    def _sniff_fail(self) -> None:
        if self.first_wrong is None:
            return
        row, spec = self.first_wrong, self.spec
        n = len(split_record(row["raw"], spec) or [])
        other = other_separator(spec, row["raw"])
        hint = f" (it looks {other}-separated)" if other else ""
        raise InputFormatError(
            f"{self.name}: line {row['line']}: expected {self.width} {spec.layout()} fields "
            f"({','.join(spec.columns)}); found {n} field(s) in {row['raw'][:200]!r}{hint}, and no "
            f"record among the first {self.sniffed} has the expected layout"
        )

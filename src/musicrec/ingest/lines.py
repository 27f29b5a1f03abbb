"""Bytes to lines to records: the block reader and the CSV record assembler.

:func:`iter_line_blocks` reads a binary stream in blocks of :data:`BLOCK_BYTES` and yields
runs of whole decoded lines (UTF-8 with a per-line Latin-1 fallback, or Latin-1; BOM and
CRs removed), refusing UTF-16, gzip and NUL bytes, and setting aside lines longer than
``data.max_line_bytes`` (their first :data:`LONG_LINE_PREFIX` bytes) without ever holding
them whole. :class:`RecordAssembler` joins the physical lines of quoted multi-line CSV records
and rejects a quote left open for more than :data:`MAX_RECORD_LINES` lines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from musicrec.ingest.inputs import DEFAULT_POLICY, GZIP_MAGIC, InputFormatError
from musicrec.ingest.spec import ReaderStats

BLOCK_BYTES = 1 << 23
MAX_RECORD_LINES = 200
_UTF8_BOM = b"\xef\xbb\xbf"
LONG_LINE_PREFIX = 1024  # bytes of a too-long line kept in its quarantine row


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
    if block.startswith(GZIP_MAGIC):
        raise InputFormatError(f"{name}: line 1: the data is gzip-compressed (bytes 1f 8b); expected plain text")


def _check_nul(data: bytes, name: str, first_line: int) -> None:
    """Refuse a NUL byte anywhere in the file (every encoding): the file is binary, UTF-16 or corrupt."""
    pos = data.find(b"\x00")
    if pos >= 0:
        line = first_line + data.count(b"\n", 0, pos)
        raise InputFormatError(f"{name}: line {line}: NUL byte found; expected a text file, this looks binary "
                               f"(or UTF-16, or corrupt)")


def iter_line_blocks(fh: BinaryIO, name: str, encoding: str, stats: ReaderStats,
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


class RecordAssembler:
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

"""iter_records' chunking and header handling (musicrec.ingest.reader): the same records and rejects
whatever ``chunk_rows`` is, and one header rule wherever the first record is found."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicrec.ingest.inputs import InputFile
from musicrec.ingest.reader import iter_records
from musicrec.ingest.spec import ReaderStats, TableSpec

CSV = TableSpec(("user", "item", "plays"), ",", "required", quoting=True)
HEADERLESS_CSV = TableSpec(("user", "item", "plays"), ",", "none", quoting=True)


def read(path: Path, spec: TableSpec, chunk_rows: int) -> tuple[list, list, list[int], ReaderStats]:
    stats = ReaderStats()
    chunks = list(iter_records(InputFile(path), spec, chunk_rows, stats))
    rows = [(f["_line"], f["user"], f["item"], f["plays"]) for c in chunks for f in c.fields.to_pylist()]
    rejects = [(r["line"], r["reason"]) for c in chunks for r in c.rejects.to_pylist()]
    return rows, rejects, [c.fields.num_rows for c in chunks], stats


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 100])
def test_records_and_rejects_do_not_depend_on_chunk_rows(tmp_path: Path, chunk_rows: int) -> None:
    p = tmp_path / "plays.csv"
    p.write_text('\nuser,item,plays\nu1,i1,1\n\nu2,"i,2",2\nbad\nu3,"multi\nline",3\nu4,i4,4\nu5,i5\n'
                 'u6,i6,6\nu7,i7,7', encoding="utf-8")
    rows, rejects, sizes, stats = read(p, CSV, chunk_rows)
    assert rows == [(3, "u1", "i1", "1"), (5, "u2", "i,2", "2"), (7, "u3", "multi\nline", "3"), (9, "u4", "i4", "4"),
                    (11, "u6", "i6", "6"), (12, "u7", "i7", "7")]
    assert rejects == [(1, "empty_line"), (4, "empty_line"), (6, "wrong_field_count"), (10, "wrong_field_count")]
    assert max(sizes) <= chunk_rows
    assert stats.header == "present" and not stats.trailing_newline


def test_unexpected_header_found_only_at_end_of_file_is_rejected(tmp_path: Path) -> None:
    """A quote left open to the end of the file puts the next records after it at the end: the header
    of a headerless file among them is rejected as unexpected_header there too, not read as data."""
    p = tmp_path / "triplets.csv"
    p.write_text('"open,x,1\nuser,item,plays\nu1,i1,3\n', encoding="utf-8")
    rows, rejects, _, stats = read(p, HEADERLESS_CSV, 10)
    assert rows == [(3, "u1", "i1", "3")]
    assert rejects == [(1, "unterminated_quote"), (2, "unexpected_header")]
    assert stats.header == "unexpected"

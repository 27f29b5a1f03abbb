"""Every source reads its files compressed in place: ``<name>.gz`` (``.bz2``, ``.xz``) and ``<name>.zip`` (a member
named as published, at the top or in a folder next to other files).

Parametrised over every ``SOURCES`` entry with its small published-shape fixture
(:mod:`published`), so a newly registered source is covered (and fails here until it has a
fixture). Each compressed copy must give the same cleaned output, byte for byte in content,
as the plain files. Archives (``.zip``) and SQLite databases are read as published, never
compressed again.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from published import PUBLISHED, zip_of  # noqa: E402

from musicrec.ingest import SOURCES  # noqa: E402
from musicrec.pipeline.clean import CleanConfig, clean  # noqa: E402

AS_PUBLISHED = (".zip", ".db")  # never compressed again (find_file does not look for them compressed)


def _zip(member: str, data: bytes) -> bytes:
    return zip_of({member: data})


def _write(folder: Path, files: dict[str, bytes], mode: str) -> dict[str, str]:
    """Write ``files`` into ``folder`` as ``mode`` (plain, gz, bz2, xz, zip, zip_in_folder); returns published
    name -> name written."""
    folder.mkdir(parents=True)
    names = {}
    for name, data in files.items():
        if mode == "plain" or name.lower().endswith(AS_PUBLISHED):
            out, payload = name, data
        elif mode == "gz":
            out, payload = name + ".gz", gzip.compress(data, mtime=0)
        elif mode == "bz2":
            out, payload = name + ".bz2", bz2.compress(data)
        elif mode == "xz":
            out, payload = name + ".xz", lzma.compress(data)
        elif mode == "zip":
            out, payload = name + ".zip", _zip(name, data)
        else:  # zip_in_folder: the member inside a folder, next to a README, as archives are often made
            out, payload = name + ".zip", zip_of({f"download/{name}": data, "download/README.txt": b"readme"})
        (folder / out).write_bytes(payload)
        names[name] = out
    return names


def _clean(source: str, folder: Path, out: Path) -> dict:
    return clean(source, folder, out, CleanConfig(chunk_rows=2, max_playcount=10_000_000, unmatched="keep"))


def test_every_source_has_a_published_fixture() -> None:
    assert set(PUBLISHED) == set(SOURCES)


@pytest.mark.parametrize("mode", ["gz", "bz2", "xz", "zip", "zip_in_folder"])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_source_reads_compressed_files_in_place(source: str, mode: str, tmp_path: Path) -> None:
    files = PUBLISHED[source]
    _write(tmp_path / "plain", files, "plain")
    base = _clean(source, tmp_path / "plain", tmp_path / "out-plain")
    names = _write(tmp_path / mode, files, mode)
    rep = _clean(source, tmp_path / mode, tmp_path / f"out-{mode}")

    def renamed(report_name: str) -> str:  # "x.txt.gz" -> "x.txt"; "a.zip:member" stays
        head, sep, member = report_name.partition(":")
        back = {v: k for k, v in names.items()}
        return back.get(head, head) + sep + member

    kept = {renamed(f): (r["rows_read"], r["kept"], r["quarantined"]) for f, r in rep["files"].items()}
    assert kept == {f: (r["rows_read"], r["kept"], r["quarantined"]) for f, r in base["files"].items()}
    assert base["output"]["plays"] > 0 and rep["output"] == base["output"]
    for part in ("plays", "items.parquet"):
        assert pq.read_table(tmp_path / f"out-{mode}" / part).equals(pq.read_table(tmp_path / "out-plain" / part))

"""musicrec.io.atomic_path: outputs appear whole, with normal permissions, or not at all."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from musicrec.io import TMP_PREFIX, atomic_path


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o755), (0o002, 0o755), (0o027, 0o750), (0o077, 0o700)])
def test_directory_output_gets_0755_less_the_umask(tmp_path: Path, umask, mask: int, expected: int) -> None:
    umask(mask)
    final = tmp_path / "out"
    with atomic_path(final, directory=True) as tmp:
        assert mode(tmp) == 0o700  # mkdtemp's mode while it is being written
        (tmp / "part-0.parquet").write_bytes(b"x")
    assert final.is_dir() and (final / "part-0.parquet").read_bytes() == b"x"
    assert mode(final) == expected, oct(mode(final))


def test_directory_output_replacing_an_old_one_gets_0755(tmp_path: Path, umask) -> None:
    umask(0o022)
    final = tmp_path / "out"
    final.mkdir(mode=0o700)
    (final / "old.txt").write_text("old")
    with atomic_path(final, directory=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert mode(final) == 0o755
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]


def test_file_output_is_0644(tmp_path: Path, umask) -> None:
    umask(0o022)
    final = tmp_path / "report.json"
    with atomic_path(final) as tmp:
        tmp.write_text("{}")
    assert final.read_text() == "{}" and mode(final) == 0o644


def test_failed_directory_write_leaves_the_old_output_and_no_temporary(tmp_path: Path) -> None:
    final = tmp_path / "out"
    final.mkdir()
    (final / "keep.txt").write_text("keep")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(final, directory=True) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in final.iterdir()) == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failed_rename_into_place_puts_the_previous_output_back(tmp_path, monkeypatch):
    final = tmp_path / "out"
    final.mkdir()
    (final / "keep.txt").write_text("keep")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == final and Path(src).name.startswith(TMP_PREFIX) and not Path(src).name.endswith("-old"):
            raise OSError(errno.EIO, "I/O error")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="I/O error"):
        with atomic_path(final, directory=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_private_outputs_are_0600_and_0700(tmp_path):
    """Keys and credentials: ``private=True`` gives the owner alone access to the file or folder."""
    import stat

    with atomic_path(tmp_path / "secret.env", private=True) as tmp:
        tmp.write_text("KEY=1\n")
    with atomic_path(tmp_path / "keys", directory=True, private=True) as tmp:
        (tmp / "a").write_text("x")
    assert stat.S_IMODE((tmp_path / "secret.env").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert (tmp_path / "secret.env").read_text() == "KEY=1\n"

"""A bug is not a user error (issue #12).

A :class:`musicrec.errors.UserError` (bad params, bad input, missing or corrupt
outputs of an earlier stage, unreachable service) is printed by the stages and
the CLI as one paragraph with exit status 2. Anything else is a bug: the full
traceback, then a line asking to report it, exit status 70.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import runpy
import sys
from pathlib import Path

import pytest

import musicrec
from musicrec.errors import DataError, FileAccessError, MissingInputError, ResourceUnavailable, UserError, reading
from musicrec.pipeline.runner import EXIT_BUG, EXIT_USER_ERROR, bug_text, run_main, run_stage

ROOT = Path(__file__).resolve().parents[3]
PARAMS = ROOT / "params.yaml"

# The exception classes of the package that are NOT user errors: using a model before fit() is a
# programming error of the library caller (the stages and the CLI only use fitted or loaded models).
BUG_CLASSES = {"musicrec.models.base.NotFittedError"}
# Raised and caught inside one module, never seen outside it (config's loader turns a refused YAML
# construct into a ParamsError naming the file and line).
INTERNAL_CLASSES = {"musicrec.params_file._Refused"}


def _stage_main(name: str):
    return runpy.run_path(str(ROOT / "stages" / f"{name}.py"))["main"]


def _run(main, name: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        run_stage(main, name)
    return exit_.value.code


def test_broken_clean_accounting_is_reported_as_a_bug(tmp_path, capsys, monkeypatch):
    """Every file report miscounts its rows: clean's invariant check fires; a traceback, not a user error."""
    from musicrec.ingest.contract import FileReport

    def get(self):
        return self.__dict__["rows_read"] + 1

    def put(self, value):
        self.__dict__["rows_read"] = value

    monkeypatch.setattr(FileReport, "rows_read", property(get, put), raising=False)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Music Info.csv").write_text(
        "track_id,name,artist,spotify_preview_url,spotify_id,tags,genre,year,duration_ms,danceability,energy,"
        "key,loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,time_signature\n"
        "TRA,Song,Artist,http://p,sp,rock,Rock,2004,200000,0.5,0.6,1,-5.0,1,0.1,0.2,0.0,0.1,0.5,120.0,4\n")
    (raw / "User Listening History.csv").write_text("track_id,user_id,playcount\nTRA,u1,3\n")
    params = tmp_path / "params.yaml"  # the raw folder is in tmp_path, outside the repository
    params.write_text(PARAMS.read_text().replace("allow_absolute_paths: false", "allow_absolute_paths: true"))
    assert "allow_absolute_paths: true" in params.read_text()
    main = _stage_main("clean")
    out = tmp_path / "interim"
    code = _run(lambda: sys.exit(main(["--params", str(params), "--input", str(raw), "--out", str(out),
                                        "--report", str(tmp_path / "dq.json")])), "clean")
    err = capsys.readouterr().err
    assert code == EXIT_BUG != EXIT_USER_ERROR
    assert "Traceback (most recent call last)" in err and "RuntimeError: accounting bug in" in err, err
    assert err.rstrip().splitlines()[-1] == bug_text("musicrec clean")
    assert bug_text("musicrec clean") == ("musicrec clean: internal error (a bug): "
                                          "please report it with the traceback above")
    assert not out.exists(), "nothing is written when the stage fails"


@pytest.mark.parametrize("debug", [False, True])
def test_user_error_is_one_paragraph_and_exit_2(tmp_path, capsys, monkeypatch, debug):
    """The interactions stage on a missing transform output: MissingInputError -> one paragraph, exit 2."""
    if debug:
        monkeypatch.setenv("MUSICREC_DEBUG", "1")
    else:
        monkeypatch.delenv("MUSICREC_DEBUG", raising=False)
    plays = tmp_path / "no-such-plays"
    monkeypatch.setattr(sys, "argv", ["interactions.py", "--params", str(PARAMS), "--plays", str(plays),
                                      "--out", str(tmp_path / "m"), "--report", str(tmp_path / "r.json")])
    code = _run(_stage_main("interactions"), "interactions")
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert ("Traceback" in err) is debug
    paragraph = err.split("MissingInputError: ")[-1].split("\n", 1)[-1] if debug else err
    assert "\n\n" not in paragraph.strip()
    assert " ".join(paragraph.split()) == (f"musicrec interactions: error: {plays}: no Parquet parts "
                                           "(run the transform stage first)")
    assert bug_text("musicrec interactions") not in err


def test_interrupt_exits_130(capsys):
    def main():
        raise KeyboardInterrupt

    assert _run(main, "train") == 130
    assert capsys.readouterr().err.strip() == "musicrec train: interrupted; no output was replaced"


@pytest.mark.parametrize("exc", [ValueError("shapes (3,) and (4,) disagree"), OSError("[Errno 5] Input/output error"),
                                 FileNotFoundError(2, "No such file or directory", "data/.tmp-x"),
                                 PermissionError(1, "Operation not permitted"),  # no file named: os.kill & co
                                 KeyError("user_id"), RuntimeError("wrote 3 rows, expected 4")])
def test_builtin_exceptions_are_bugs(exc, capsys):
    """A plain ValueError / OSError / RuntimeError is no longer taken for a user error."""
    def main():
        raise exc

    with pytest.raises(SystemExit) as exit_:
        run_main(main, "musicrec")
    err = capsys.readouterr().err
    assert exit_.value.code == EXIT_BUG
    assert f"{type(exc).__name__}: " in err and "Traceback (most recent call last)" in err
    assert err.rstrip().endswith(bug_text("musicrec"))


@pytest.mark.parametrize("exc, message", [
    (PermissionError(13, "Permission denied", "data/raw/kaggle/Music Info.csv"),
     "data/raw/kaggle/Music Info.csv: Permission denied"),
    (OSError(30, "Read-only file system", "data/interim"), "data/interim: Read-only file system"),
    (PermissionError(13, "Permission denied", "a.tmp", None, "a"), "a.tmp -> a: Permission denied"),
])
def test_os_errors_only_the_environment_causes_are_user_errors(exc, message, capsys, monkeypatch):
    monkeypatch.delenv("MUSICREC_DEBUG", raising=False)

    def main():
        raise exc

    assert _run(main, "clean") == EXIT_USER_ERROR
    assert capsys.readouterr().err == f"musicrec clean: error: {message}\n"


def _exception_classes():
    for info in pkgutil.walk_packages(musicrec.__path__, "musicrec."):
        mod = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == mod.__name__:
                yield f"{cls.__module__}.{cls.__qualname__}", cls


def test_every_exception_class_of_the_package_is_a_user_error_or_a_listed_bug():
    found = dict(_exception_classes())
    assert BUG_CLASSES <= set(found), "a listed bug class no longer exists"
    wrong = sorted(name for name, cls in found.items() if not issubclass(cls, UserError) and name not in BUG_CLASSES | INTERNAL_CLASSES)
    assert wrong == [], f"derive these from musicrec.errors.UserError or list them in BUG_CLASSES: {wrong}"
    assert not any(issubclass(found[n], UserError) for n in BUG_CLASSES)


@pytest.mark.parametrize("module, name, builtin", [
    ("musicrec.params_file", "ParamsError", ValueError),
    ("musicrec.ingest.inputs", "InputFormatError", ValueError),
    ("musicrec.io", "DiskFullError", OSError),
    ("musicrec.devservices.config", "ServiceError", RuntimeError),
    ("musicrec.tracking.server", "TrackingUnavailable", RuntimeError),
    ("musicrec.serving.artifacts", "ServingError", ValueError),
    ("musicrec.errors", "DataError", ValueError),
    ("musicrec.errors", "MissingInputError", FileNotFoundError),
    ("musicrec.errors", "FileAccessError", OSError),
    ("musicrec.errors", "ResourceUnavailable", RuntimeError),
])
def test_user_errors_keep_their_builtin_base(module, name, builtin):
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, UserError) and issubclass(cls, builtin)


def test_disk_full_error_keeps_errno_and_message():
    import errno

    from musicrec.io import DiskFullError

    err = DiskFullError(errno.ENOSPC, "disk full while writing out.parquet")
    assert err.errno == errno.ENOSPC and str(err) == "disk full while writing out.parquet"


def _raise(exc: BaseException):
    raise exc


@pytest.mark.parametrize("exc, cls, words", [
    (FileNotFoundError(2, "No such file or directory"), MissingInputError, ["not found", "(run the X stage)"]),
    (PermissionError(13, "Permission denied"), FileAccessError, ["cannot be read: Permission denied"]),
    (IsADirectoryError(21, "Is a directory"), FileAccessError, ["cannot be read: Is a directory"]),
    (ValueError("Parquet magic bytes not found in footer"), DataError, ["not a valid file: Parquet magic bytes"]),
])
def test_reading_names_the_path(tmp_path, exc, cls, words):
    path = tmp_path / "plays.parquet"
    with pytest.raises(cls) as err:
        with reading(path, "run the X stage"):
            _raise(exc)
    assert str(err.value).startswith(f"{path}: ") and all(w in str(err.value) for w in words), str(err.value)
    assert err.value.__cause__ is exc


def test_reading_lets_user_errors_and_other_exceptions_through(tmp_path):
    inner = MissingInputError("x: not found (run the clean stage first)")
    with pytest.raises(MissingInputError) as err, reading(tmp_path):
        _raise(inner)
    assert err.value is inner
    with pytest.raises(KeyError), reading(tmp_path):
        _raise(KeyError("a bug"))


def test_corrupt_and_missing_matrices_folder_are_user_errors(tmp_path):
    from musicrec.pipeline.interactions import load_interactions

    with pytest.raises(MissingInputError, match=r"/nope: not found \(run the interactions stage first\)$"):
        load_interactions(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    with pytest.raises(MissingInputError, match=r"/m: .*/m/users\.parquet.*\(run the interactions stage first\)$"):
        load_interactions(tmp_path / "m")
    (tmp_path / "m" / "users.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"/m: not a valid file: .*\(run the interactions stage first\)"):
        load_interactions(tmp_path / "m")


def test_gpu_requested_but_missing_is_a_resource_error(monkeypatch):
    from musicrec.models import mf

    monkeypatch.setattr(mf, "gpu_available", lambda: (False, "implicit.gpu.HAS_CUDA is false"))
    with pytest.raises(ResourceUnavailable, match=r"train\.als\.use_gpu is true but implicit\.gpu\.HAS_CUDA"):
        mf.ALSRecommender(use_gpu=True).fit(__import__("scipy.sparse").sparse.csr_matrix([[1.0, 0.0], [0.0, 1.0]]))


def test_saved_model_too_big_for_ease_is_a_data_error():
    import scipy.sparse as sp

    from musicrec.models.factory import build_model

    with pytest.raises(DataError, match=r"train\.ease\.max_items=2"):
        build_model("ease", {"l2": 1.0, "max_items": 2}, seed=0).fit(sp.csr_matrix(sp.eye(3, format="csr")))


def _cli(monkeypatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", ["musicrec", *argv])
    monkeypatch.delitem(sys.modules, "musicrec.serving.cli", raising=False)  # imported by the module walk above
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("musicrec", run_name="__main__", alter_sys=True)
    return exit_.value.code


def test_cli_corrupt_model_folder_is_a_user_error(tmp_path, capsys, monkeypatch):
    import pandas as pd

    monkeypatch.delenv("MUSICREC_DEBUG", raising=False)
    models = tmp_path / "models"
    (models / "als").mkdir(parents=True)
    (models / "als" / "model.json").write_text("{not json", encoding="utf-8")
    pd.DataFrame({"item_id": ["t1"], "name": ["n"], "artist": ["a"]}).to_parquet(models / "catalog.parquet")
    pd.DataFrame({"user_id": ["u1"]}).to_parquet(models / "users.parquet")
    assert _cli(monkeypatch, "similar", "t1", "--models", str(models)) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith(f"musicrec: error: {models / 'als' / 'model.json'}: not valid JSON") and "Traceback" not in err
    assert err.count("\n") == 1


def test_cli_bug_keeps_its_traceback(tmp_path, capsys, monkeypatch):
    from musicrec.serving import artifacts

    def broken(models_dir):
        raise IndexError("list index out of range")

    monkeypatch.setattr(artifacts, "available_models", broken)
    assert _cli(monkeypatch, "models", "--models", str(tmp_path)) == EXIT_BUG
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "IndexError: list index out of range" in err
    assert err.rstrip().splitlines()[-1] == bug_text("musicrec")

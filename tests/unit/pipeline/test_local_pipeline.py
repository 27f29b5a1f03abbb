"""pipeline.local.run_local: the chain in process, stoppable and restartable from the files of a step."""

import pytest

from musicrec.pipeline.local import LocalPaths, params_for, run_local

PARAMS = params_for(5, data={"chunk_rows": 1_000},
                    generate={"n_tracks": 120, "n_users": 80, "n_plays": 2_000, "n_genres": 3, "n_artists": 30},
                    transform={"partitions": 1}, dask={"scheduler": "synchronous", "num_workers": 1},
                    evaluate={"k": [5], "main_k": 5, "bootstrap": 0})


def test_a_run_split_in_two_gives_the_same_matrices_as_one_run(tmp_path):
    whole = run_local(PARAMS, LocalPaths.under(tmp_path / "a"), stop="interactions")
    paths = LocalPaths.under(tmp_path / "b")
    first = run_local(PARAMS, paths, stop="transform")
    second = run_local(PARAMS, paths, start="interactions", stop="interactions")
    assert first.built is None and second.clean is None and second.transform is None
    assert first.transform == whole.transform
    assert second.built.report == whole.built.report
    a, b = whole.interactions(), second.interactions()
    for name in ("train", "validation", "test", "query"):
        assert (getattr(a, name) != getattr(b, name)).nnz == 0, name
    assert paths.matrices.is_dir() and not (tmp_path / "b" / "data" / "models").exists()


def test_train_and_evaluate_read_the_matrices_a_previous_run_wrote(tmp_path):
    paths = LocalPaths.under(tmp_path)
    run_local(PARAMS, paths, stop="interactions")
    run = run_local(PARAMS, paths, start="train")
    assert [t.name for t in run.trained] == ["popularity"] and (paths.models / "popularity").is_dir()
    assert set(run.assessment.results) == {"popularity"}
    assert 0 <= run.assessment.results["popularity"]["metrics"]["ndcg@5"] <= 1


def test_start_after_stop_is_refused(tmp_path):
    with pytest.raises(ValueError, match="start='train' comes after stop='clean'"):
        run_local(PARAMS, LocalPaths.under(tmp_path), start="train", stop="clean")

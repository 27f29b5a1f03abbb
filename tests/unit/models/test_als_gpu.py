"""``train.als.use_gpu``: false | auto | true, on a machine with or without CUDA.

Without CUDA (this CI): ``auto`` falls back to the CPU with a log line and gives
the same factors as ``false``; ``true`` fails fast naming the reason. The GPU
branch itself is exercised with a stand-in for ``implicit.gpu``'s class (fit,
then ``to_cpu()``), so the conversion and save/load path run everywhere.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec.models import ALSParams
from musicrec.models.factory import build_model, load_model
from musicrec.models import mf


@pytest.fixture
def X():
    m = sp.random(60, 80, density=0.1, format="csr", random_state=0, dtype=np.float32)
    m.data[:] = 1 + np.arange(m.nnz) % 4
    return m


def _params(use_gpu):
    return {"factors": 8, "regularization": 0.1, "alpha": 2.0, "iterations": 3, "use_gpu": use_gpu}


def test_schema_accepts_false_auto_true_only():
    assert ALSParams().use_gpu is False
    assert ALSParams(use_gpu="auto").use_gpu == "auto"
    with pytest.raises(ValueError, match="use_gpu"):
        ALSParams(use_gpu="maybe")


@pytest.mark.skipif(mf.gpu_available()[0], reason="CUDA is usable here: the fallback is not taken")
def test_auto_falls_back_to_cpu_with_a_log_line(X, caplog, tmp_path):
    cpu = build_model("als", _params(False), seed=3).fit(X)
    with caplog.at_level(logging.INFO, logger="musicrec.models.mf"):
        auto = build_model("als", _params("auto"), seed=3).fit(X)
    assert "use_gpu=auto" in caplog.text and "training on the CPU" in caplog.text
    assert auto.fitted_on_gpu is False
    np.testing.assert_array_equal(auto.item_factors, cpu.item_factors)
    np.testing.assert_array_equal(auto.user_factors, cpu.user_factors)
    auto.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    np.testing.assert_array_equal(back.recommend(np.arange(60), X, N=5)[0], auto.recommend(np.arange(60), X, N=5)[0])


@pytest.mark.skipif(mf.gpu_available()[0], reason="CUDA is usable here")
def test_true_without_cuda_fails_fast_with_the_reason():
    with pytest.raises(RuntimeError, match=r"use_gpu is true but .*HAS_CUDA.*set it to auto"):
        build_model("als", _params(True), seed=0)


def test_gpu_branch_converts_to_cpu_and_saves(X, monkeypatch, tmp_path):
    """A stand-in for implicit.gpu's ALS (same maths, on the CPU) exercises fit -> to_cpu -> save/load."""
    from implicit.cpu.als import AlternatingLeastSquares as CPUALS

    calls = {}

    class FakeGPUALS:
        def __init__(self, **kw):
            assert "num_threads" not in kw  # implicit.gpu's ALS takes no num_threads
            calls["init"] = kw
            self._cpu = CPUALS(**kw)

        def fit(self, X, show_progress=False, callback=None):  # implicit.gpu ALS.fit signature
            calls["fit"] = True
            self._cpu.fit(X, show_progress=show_progress)

        def to_cpu(self):
            calls["to_cpu"] = True
            return self._cpu

    real = mf.implicit_backend

    def fake_backend(kind, use_gpu=False):
        if kind == "als" and use_gpu in (True, "auto"):
            return FakeGPUALS, True
        return real(kind, use_gpu)

    monkeypatch.setattr(mf, "implicit_backend", fake_backend)
    monkeypatch.setattr(mf, "gpu_available", lambda: (True, ""))
    gpu = build_model("als", _params(True), seed=3).fit(X)
    assert calls == {"init": calls["init"], "fit": True, "to_cpu": True}
    assert gpu.fitted_on_gpu is True
    cpu = build_model("als", _params(False), seed=3).fit(X)
    np.testing.assert_array_equal(gpu.item_factors, cpu.item_factors)
    gpu.save(tmp_path / "g")
    back = load_model(tmp_path / "g")
    assert back.get_params() == cpu.get_params()  # use_gpu is how, not what: not saved
    users = np.arange(60)
    np.testing.assert_array_equal(back.recommend(users, X, N=5)[0], cpu.recommend(users, X, N=5)[0])
    np.testing.assert_array_equal(back.recommend([-1], X[[4]], N=5)[0], cpu.recommend([-1], X[[4]], N=5)[0])

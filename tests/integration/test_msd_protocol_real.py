"""The MSD strong-generalisation protocol on real data: HetRec 2011 Last.fm 2K from ../shared.

Users >= 20 artists, artists >= 20 listeners, 300 users each held out for validation and
test, 80% of their artists revealed, binary input; the numbers pinned below are the ones
``benchmarks/msd_protocol.py --hetrec`` wrote to ``reports/msd_protocol.json``. Skipped
when the zip is not available.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
ZIP = REPO.parent / "shared/data/real/hetrec2011-lastfm-2k/hetrec2011-lastfm-2k.zip"
RECORDED = json.loads((REPO / "reports/msd_protocol.json").read_text())["hetrec"]

pytestmark = pytest.mark.skipif(not ZIP.is_file(), reason=f"HetRec Last.fm 2K zip not found at {ZIP}")


@pytest.fixture(scope="module")
def protocol(tmp_path_factory):
    from musicrec.evaluation import metrics as M
    from musicrec.models.factory import build_model
    from musicrec.pipeline.evaluate import recommend_batched
    from musicrec.pipeline.local import LocalPaths, params_for, run_local

    params = params_for(42, "hetrec_lastfm_2k", transform={"min_user_items": 20, "min_item_users": 20},
                        dask={"scheduler": "threads", "num_workers": 2},
                        interactions={"split": {"method": "strong_generalization",
                                                                     "heldout_users": 300, "min_user_items": 20}},
                        evaluate={"k": [20, 50, 100], "main_k": 20, "bootstrap": 0})
    work = tmp_path_factory.mktemp("msd")
    run = run_local(params, LocalPaths.under(work, raw=ZIP.parent), start="clean", stop="interactions")
    inter = run.interactions()
    X, query = inter.train.copy(), inter.query.copy()
    X.data[:] = query.data[:] = 1.0
    users = np.flatnonzero(np.diff(inter.test.indptr) > 0)
    out = {}
    for name in ("popularity", "itemknn", "ease"):
        model = build_model(name, RECORDED["models"][name]["params"], seed=42).fit(X)
        recs = recommend_batched(model, users, query, 100)
        rel = inter.test[users]
        got = {k: float(np.nanmean(v)) for k, v in M.capped_recall_metrics(recs, rel, [20, 50]).items()}
        got["ndcg@100"] = float(np.nanmean(M.accuracy_metrics(recs, rel, [100])["ndcg@100"]))
        out[name] = got
    return run.built.report, out


def test_the_split_holds_out_the_configured_users(protocol):
    report, _ = protocol
    split = report["split"]
    assert split["test_users"] == split["validation_users"] == 300
    assert split["train"] + split["validation"] + split["test"] + split["query"] + split["dropped_unseen_items"] \
        == report["interactions"]


@pytest.mark.parametrize("name", ["popularity", "itemknn", "ease"])
def test_numbers_match_the_recorded_report(protocol, name):
    _, got = protocol
    for metric, value in got[name].items():
        assert value == pytest.approx(RECORDED["models"][name][metric], abs=2e-3), metric


def test_ease_beats_item_knn_beats_popularity(protocol):
    _, got = protocol
    for metric in ("recall_capped@20", "recall_capped@50", "ndcg@100"):
        assert got["ease"][metric] > got["itemknn"][metric] > got["popularity"][metric], metric

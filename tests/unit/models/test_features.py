"""Item content features (musicrec.models.features)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musicrec.models.features import ItemFeatures, build_item_features, split_tags
from musicrec.schema import AUDIO_FEATURES, ITEM_COLUMNS


def items_frame():
    df = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "name": ["A", "B", "C", "D"],
            "artist": ["x", "x", "y", "z"],
            "tags": ["rock, indie", "rock", None, "Jazz,,  smooth jazz "],
            "genre": [None] * 4,
            "year": [2000, 2001, 2002, 2003],
            "duration_ms": [1, 2, 3, 4],
        }
    )
    for col in AUDIO_FEATURES:
        df[col] = [0.1, 0.2, 0.3, 0.4]
    df["energy"] = [1.0, np.nan, 3.0, 5.0]
    df["tempo"] = [120.0, 120.0, 120.0, 120.0]  # constant column
    df["preview_url"] = [None] * 4
    return df[list(ITEM_COLUMNS)]


def test_split_tags():
    assert split_tags("Rock, indie ,,pop") == ["rock", "indie", "pop"]
    assert split_tags("") == []


def test_build_shapes_names_and_norms():
    f = build_item_features(items_frame(), np.array(["a", "b", "c", "d", "zz"]), tag_weight=1.0, audio_weight=0.5)
    assert isinstance(f.vectors, sp.csr_matrix) and f.vectors.dtype == np.float32
    assert f.vectors.shape == (5, len(f.tag_vocabulary) + len(AUDIO_FEATURES))
    assert list(f.tag_vocabulary) == ["indie", "jazz", "rock", "smooth jazz"]
    assert list(f.feature_names[:4]) == ["tag:indie", "tag:jazz", "tag:rock", "tag:smooth jazz"]
    assert f.feature_names[4] == "audio:danceability"
    norms = np.sqrt(np.asarray(f.vectors.multiply(f.vectors).sum(axis=1)).ravel())
    np.testing.assert_allclose(norms[:4], 1.0, rtol=1e-6)
    assert norms[4] == 0  # missing from the frame -> zero vector
    assert f.n_items == 5 and f.describe(3)[0][0].startswith("tag:")


def test_audio_imputed_and_standardised():
    f = build_item_features(items_frame(), np.array(["a", "b", "c", "d"]), tag_weight=0.0, audio_weight=1.0)
    # energy: [1, nan, 3, 5] -> mean 3 imputed -> [1, 3, 3, 5] -> z-scores; the other columns differ per row
    energy = list(AUDIO_FEATURES).index("energy")
    tempo = list(AUDIO_FEATURES).index("tempo")
    raw = np.array([1, 3, 3, 5.0])
    z = (raw - raw.mean()) / raw.std()
    audio = f.audio.toarray()
    assert (audio[:, tempo] == 0).all()  # constant column -> 0
    assert np.sign(audio[:, energy]).tolist() == np.sign(z).tolist()
    assert f.tags.shape[1] == 4 and f.vectors[:, :4].nnz == 0  # tag_weight 0
    # vectors are L2-normalised rows of the audio block
    np.testing.assert_allclose(f.vectors[:, 4:].toarray(), audio, rtol=1e-6)


def test_tfidf_matches_sklearn_semantics():
    f = build_item_features(items_frame(), np.array(["b", "a"]), tag_weight=1.0, audio_weight=0.0)
    v = f.vectors.toarray()
    rock, indie = list(f.tag_vocabulary).index("rock"), list(f.tag_vocabulary).index("indie")
    assert v[0, rock] == pytest.approx(1.0)  # "b" has only rock
    assert v[1, indie] > v[1, rock] > 0  # indie is rarer than rock


def test_reweighted_and_round_trip(tmp_path):
    f = build_item_features(items_frame(), np.array(["a", "b", "c", "d"]), tag_weight=1.0, audio_weight=0.5)
    g = f.reweighted(2.0, 0.0)
    assert g.tag_weight == 2.0 and g.vectors[:, len(g.tag_vocabulary):].nnz == 0
    f.save(tmp_path / "f.npz")
    h = ItemFeatures.load(tmp_path / "f.npz")
    assert (h.vectors != f.vectors).nnz == 0
    assert list(h.feature_names) == list(f.feature_names) and list(h.item_ids) == ["a", "b", "c", "d"]
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.npz"):
        ItemFeatures.load(tmp_path / "bad.npz")


def test_no_tags_at_all_and_errors():
    df = items_frame()
    df["tags"] = None
    f = build_item_features(df, np.array(["a", "b"]), tag_weight=1.0, audio_weight=1.0)
    assert len(f.tag_vocabulary) == 0 and f.vectors.shape == (2, len(AUDIO_FEATURES))
    with pytest.raises(ValueError, match="duplicates"):
        build_item_features(items_frame(), np.array(["a", "a"]), tag_weight=1.0, audio_weight=1.0)
    dup = pd.concat([items_frame(), items_frame().iloc[:1]])
    with pytest.raises(ValueError, match="duplicate item_id"):
        build_item_features(dup, np.array(["a"]), tag_weight=1.0, audio_weight=1.0)
    with pytest.raises(ValueError, match="tag_weight"):
        build_item_features(items_frame(), np.array(["a"]), tag_weight=-1.0, audio_weight=1.0)

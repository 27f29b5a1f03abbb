"""Test rankings drop the user's validation items (heard, so neither a recommendation nor a miss)."""

import numpy as np
import scipy.sparse as sp

from musicrec.models.factory import build_model
from musicrec.pipeline.evaluate import recommend_batched, recommend_unheard


def test_validation_items_leave_the_test_ranking_and_the_rest_keeps_its_order():
    # popularity order: item 0 (4 users) > 1 (3) > 2 (2) > 3 (1) > 4, 5 (none)
    train = sp.csr_matrix(np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
                                   dtype=np.float32))
    model = build_model("popularity", {}, seed=0).fit(train)
    query = sp.csr_matrix(np.array([[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=np.float32))
    heard = sp.csr_matrix(np.array([[0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]], dtype=np.float32))
    users = np.array([0, 1, 2])
    plain = recommend_batched(model, users, query, 6)
    got = recommend_unheard(model, users, query, heard, 3)
    assert got.tolist() == [[0, 2, 4], [0, 1, 2], [1, 3, 4]]
    # with nothing heard, the same as recommend_batched; rows run out of items -> -1 padding stays at the end
    assert np.array_equal(recommend_unheard(model, users, query, sp.csr_matrix(heard.shape), 3), plain[:, :3])
    all_heard = sp.csr_matrix(np.array([[0, 1, 1, 1, 1, 1]] * 3, dtype=np.float32))
    assert recommend_unheard(model, users, query, all_heard, 2).tolist() == [[0, -1], [0, -1], [-1, -1]]

"""Item content features: TF-IDF of Last.fm tags plus standardised audio features.

:func:`build_item_features` turns the items table (``schema.ITEM_COLUMNS``) into
one vector per matrix column:

* **tags** -- ``tags`` is a comma-separated, lower-cased list. Each tag is one
  term of a scikit-learn ``TfidfVectorizer`` (smooth idf, sublinear tf off);
  rows are L2-normalised.
* **audio** -- the ``schema.AUDIO_FEATURES`` columns; nulls are imputed with the
  column mean (0 where a column is entirely null), then standardised (z-score,
  a constant column becomes 0); rows are L2-normalised so that the block has
  the same scale as the tag block.
* the two blocks are multiplied by ``tag_weight`` / ``audio_weight``,
  concatenated and each row L2-normalised again, so the dot product of two item
  vectors is their cosine similarity.

Items in ``item_ids`` that are missing from the frame get all-zero vectors (and
do not take part in the idf, mean or standard deviation).

:func:`dense_embeddings` turns these features into one dense vector per item (the
content model's ``embedding: tfidf_svd``, what its FAISS index holds): a truncated
SVD of the TF-IDF tag block, fitted on the catalogue with a fixed seed, in place of
the sparse tags, concatenated with the standardised audio block, weighted and
L2-normalised as above.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from musicrec.errors import DataError
from musicrec.io import atomic_path
from musicrec.models.persist import load_npz, write_npz
from musicrec.schema import AUDIO_FEATURES

TAG_PREFIX = "tag:"
AUDIO_PREFIX = "audio:"


def split_tags(text: str) -> list[str]:
    """``"Rock, indie ,,pop"`` -> ``["rock", "indie", "pop"]``."""
    return [t for t in (part.strip().lower() for part in text.split(",")) if t]


def _l2_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1), 0).astype(np.float32)
    return sp.csr_matrix(sp.diags(scale) @ m, dtype=np.float32)


@dataclass(frozen=True)
class ItemFeatures:
    """Content vectors aligned with the item (column) indices of the interaction matrix.

    ``vectors`` is the combined float32 CSR matrix (n_items x n_features) with
    L2-normalised rows (all-zero rows for items without metadata).
    ``feature_names`` names its columns: ``"tag:<tag>"`` then ``"audio:<feature>"``.
    ``tags`` and ``audio`` are the unweighted blocks, kept so that the weights can
    be changed with :meth:`reweighted`.
    """

    item_ids: np.ndarray
    tags: sp.csr_matrix
    audio: sp.csr_matrix
    tag_vocabulary: np.ndarray
    audio_names: np.ndarray
    tag_weight: float
    audio_weight: float
    vectors: sp.csr_matrix = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.item_ids)
        if self.tags.shape != (n, len(self.tag_vocabulary)):
            raise ValueError(f"tags block has shape {self.tags.shape}, expected ({n}, {len(self.tag_vocabulary)})")
        if self.audio.shape != (n, len(self.audio_names)):
            raise ValueError(f"audio block has shape {self.audio.shape}, expected ({n}, {len(self.audio_names)})")
        for name, w in (("tag_weight", self.tag_weight), ("audio_weight", self.audio_weight)):
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"{name} must be a finite number >= 0 (got {w!r})")
        combined = sp.hstack(
            [self.tags * np.float32(self.tag_weight), self.audio * np.float32(self.audio_weight)], format="csr"
        )
        combined.eliminate_zeros()
        object.__setattr__(self, "vectors", _l2_rows(combined))

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def feature_names(self) -> np.ndarray:
        return np.concatenate(
            [
                np.asarray([TAG_PREFIX + t for t in self.tag_vocabulary], dtype=str),
                np.asarray([AUDIO_PREFIX + a for a in self.audio_names], dtype=str),
            ]
        ).astype(str)

    def reweighted(self, tag_weight: float, audio_weight: float) -> ItemFeatures:
        """The same features with other block weights."""
        return ItemFeatures(
            self.item_ids, self.tags, self.audio, self.tag_vocabulary, self.audio_names,
            float(tag_weight), float(audio_weight),
        )

    def top_features(self, vector: np.ndarray | sp.spmatrix, n: int = 5) -> list[tuple[str, float]]:
        """The ``n`` largest positive entries of a feature-space vector, named (for explanations).

        ``vector`` may be an item's row of :attr:`vectors` or a user profile.
        """
        v = np.asarray(vector.toarray() if sp.issparse(vector) else vector, dtype=np.float32).ravel()
        if v.shape[0] != self.vectors.shape[1]:
            raise ValueError(f"vector has {v.shape[0]} entries, expected {self.vectors.shape[1]}")
        names = self.feature_names
        idx = np.lexsort((np.arange(len(v)), -v))[:n]
        return [(str(names[i]), float(v[i])) for i in idx if v[i] > 0]

    def describe(self, item: int, n: int = 5) -> list[tuple[str, float]]:
        """Top named features of item index ``item``."""
        if not 0 <= item < self.n_items:
            raise ValueError(f"item must lie in [0, {self.n_items}) (got {item})")
        return self.top_features(self.vectors[item], n)

    # ---- persistence (no pickle) -------------------------------------------
    def to_arrays(self, prefix: str = "features") -> dict[str, np.ndarray | sp.spmatrix]:
        return {
            f"{prefix}_item_ids": np.asarray(self.item_ids, dtype=str),
            f"{prefix}_tags": self.tags,
            f"{prefix}_audio": self.audio,
            f"{prefix}_tag_vocabulary": np.asarray(self.tag_vocabulary, dtype=str),
            f"{prefix}_audio_names": np.asarray(self.audio_names, dtype=str),
            f"{prefix}_weights": np.asarray([self.tag_weight, self.audio_weight], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, get_array, get_csr, prefix: str = "features") -> ItemFeatures:
        """Inverse of :meth:`to_arrays`; ``get_array(key)``/``get_csr(key)`` fetch entries."""
        weights = np.asarray(get_array(f"{prefix}_weights"), dtype=np.float64)
        if weights.shape != (2,):
            raise ValueError(f"{prefix}_weights must hold 2 numbers (got shape {weights.shape})")
        return cls(
            np.asarray(get_array(f"{prefix}_item_ids")).astype(str),
            sp.csr_matrix(get_csr(f"{prefix}_tags"), dtype=np.float32),
            sp.csr_matrix(get_csr(f"{prefix}_audio"), dtype=np.float32),
            np.asarray(get_array(f"{prefix}_tag_vocabulary")).astype(str),
            np.asarray(get_array(f"{prefix}_audio_names")).astype(str),
            float(weights[0]),
            float(weights[1]),
        )

    def save(self, path: Path | str) -> None:
        """Write to one ``.npz`` (loaded with ``allow_pickle=False``)."""
        with atomic_path(path) as tmp:
            write_npz(tmp, self.to_arrays())

    @classmethod
    def load(cls, path: Path | str) -> ItemFeatures:
        """Read a file written by :meth:`save`; a corrupt file raises ValueError naming it."""
        bundle = load_npz(Path(path))
        try:
            return cls.from_arrays(bundle.array, bundle.csr)
        except ValueError as err:
            if str(err).startswith(str(path)):
                raise
            raise DataError(f"{path}: invalid item features ({err})") from None


def build_item_features(
    items: pd.DataFrame,
    item_ids: np.ndarray,
    *,
    tag_weight: float,
    audio_weight: float,
) -> ItemFeatures:
    """Content vectors for ``item_ids`` (matrix column order) from the items table.

    ``items`` follows ``schema.ITEM_COLUMNS`` (``item_id`` unique; ``tags`` a
    comma-separated string or null; audio features numeric or null). Missing
    audio columns are treated as entirely null.
    """
    if "item_id" not in items.columns:
        raise DataError("items frame has no 'item_id' column")
    ids = np.asarray(item_ids).astype(str)
    if ids.ndim != 1:
        raise ValueError(f"item_ids must be 1-D (got shape {ids.shape})")
    if len(np.unique(ids)) != len(ids):
        dup = pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]
        raise ValueError(f"item_ids contains duplicates (e.g. {dup!r})")
    frame_ids = items["item_id"].astype(str)
    if frame_ids.duplicated().any():
        raise ValueError(f"items frame has duplicate item_id values (e.g. {frame_ids[frame_ids.duplicated()].iloc[0]!r})")
    n = len(ids)

    # rows of `items` for each matrix column (-1 = no metadata)
    pos = pd.Index(frame_ids).get_indexer(ids)
    present = pos >= 0
    sub = items.iloc[pos[present]].reset_index(drop=True)
    rows = np.flatnonzero(present)

    # ---- tags
    if "tags" in sub.columns:
        texts = [t if isinstance(t, str) else "" for t in sub["tags"].tolist()]
    else:
        texts = [""] * len(sub)
    vocab: np.ndarray = np.zeros(0, dtype=str)
    tag_block = sp.csr_matrix((n, 0), dtype=np.float32)
    if any(split_tags(t) for t in texts):
        from sklearn.feature_extraction.text import TfidfVectorizer  # ~1.5 s import: only when fitting

        vec = TfidfVectorizer(tokenizer=split_tags, token_pattern=None, lowercase=False, dtype=np.float32)
        tfidf = sp.csr_matrix(vec.fit_transform(texts), dtype=np.float32)
        vocab = np.asarray(vec.get_feature_names_out(), dtype=str)
        tag_block = _scatter_rows(tfidf, rows, n)

    # ---- audio
    names = np.asarray(AUDIO_FEATURES, dtype=str)
    audio = np.zeros((len(sub), len(names)), dtype=np.float64)
    for j, col in enumerate(AUDIO_FEATURES):
        if col not in sub.columns or len(sub) == 0:
            continue
        values = pd.to_numeric(sub[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
        values[~np.isfinite(values)] = np.nan
        if np.isnan(values).all():
            continue
        values = np.where(np.isnan(values), np.nanmean(values), values)
        std = values.std()
        audio[:, j] = (values - values.mean()) / std if std > 0 else 0.0
    audio_block = _l2_rows(_scatter_rows(sp.csr_matrix(audio, dtype=np.float32), rows, n))

    return ItemFeatures(ids, tag_block, audio_block, vocab, names, float(tag_weight), float(audio_weight))


def _scatter_rows(block: sp.csr_matrix, rows: np.ndarray, n: int) -> sp.csr_matrix:
    """Place the rows of ``block`` at positions ``rows`` of an (n, block.shape[1]) matrix."""
    coo = block.tocoo()
    out = sp.csr_matrix((coo.data, (rows[coo.row], coo.col)), shape=(n, block.shape[1]), dtype=np.float32)
    out.sum_duplicates()
    out.sort_indices()
    return out


def dense_embeddings(features: ItemFeatures, dim: int, *, seed: int) -> np.ndarray:
    """Dense float32 ``(n_items, <= dim + n_audio)`` item embeddings with L2-normalised rows.

    The tag block is reduced to ``dim`` components by scikit-learn's ``TruncatedSVD``
    (randomized, ``random_state=seed``; a vocabulary of at most ``dim`` tags is kept
    as it is), its rows L2-normalised, then weighted and joined with the audio block
    like :attr:`ItemFeatures.vectors`. Items without metadata get zero rows.
    """
    tags = sp.csr_matrix(features.tags, dtype=np.float32)
    if tags.shape[1] > dim and tags.shape[0] > dim:
        from sklearn.decomposition import TruncatedSVD

        svd = TruncatedSVD(n_components=dim, algorithm="randomized", n_iter=7, random_state=seed)
        tag_block = np.asarray(svd.fit_transform(tags), dtype=np.float32)
    else:
        tag_block = tags.toarray()
    tag_block = _l2_rows(sp.csr_matrix(tag_block)).toarray()
    audio = features.audio.toarray().astype(np.float32)
    combined = np.hstack([tag_block * np.float32(features.tag_weight), audio * np.float32(features.audio_weight)])
    return np.ascontiguousarray(_l2_rows(sp.csr_matrix(combined)).toarray(), dtype=np.float32)

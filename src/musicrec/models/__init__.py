"""The model registry: every recommender musicrec can train, and its ``train.<name>`` params section.

:data:`MODELS` maps each model name (the key under ``train:`` in ``params.yaml``) to
a :class:`ModelSpec`: the class that implements it (``module:Class``, imported only
when a model is built or loaded), its ``Params`` section (keys, defaults, types and
bounds), whether it needs item content features, and whether a hybrid can use it as
its collaborative part. The params schema (:mod:`musicrec.config`), training, the
hybrid, serving and the model contract suite (``tests/unit/models/test_models_contract.py``)
all read this table.

To add a model: write its module in this folder (copy ``popularity.py``: a
:class:`~musicrec.models.base.Recommender` subclass), then add its ``Params`` class
and its line in :data:`MODELS` here. The params live here rather than beside the
code because every stage validates the whole ``params.yaml``: a change to a model's
code must not make ``dvc repro`` rerun the data stages, so this module imports
nothing but pydantic. Building and loading models: :mod:`musicrec.models.factory`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from musicrec.sections import Section

if TYPE_CHECKING:
    from musicrec.models.base import Recommender


Weighting = Literal["binary", "raw", "log1p", "bm25"]  # musicrec.models.weighting.SCHEMES


class WeightedParams(Section):
    """The input weighting every collaborative model applies to the play counts (``musicrec.models.weighting``).

    ``weighting`` turns the train counts into the matrix the model fits on, and the same
    transform is applied to the user rows given at recommend time; ``bm25_k1`` / ``bm25_b``
    are Okapi BM25's K1 and B (for ``weighting: bm25``, and item-kNN's ``similarity: bm25``).
    Each model's class sets the defaults it was tuned with.
    """

    weighting: Weighting = "log1p"
    bm25_k1: float = Field(100.0, gt=0, le=1e6)
    bm25_b: float = Field(0.8, ge=0, le=1)


WEIGHTING_KEYS: tuple[str, ...] = tuple(WeightedParams.model_fields)


class PopularityParams(WeightedParams):
    recent_days: float | None = Field(None, gt=0, le=36_525)  # at most 100 years


class ItemKNNParams(WeightedParams):
    similarity: Literal["cosine", "bm25"] = "bm25"
    k: int = Field(100, gt=0, le=10_000)
    bm25_k1: float = Field(1.2, gt=0, le=1e6)  # implicit's BM25Recommender defaults
    bm25_b: float = Field(0.75, ge=0, le=1)


class UserKNNParams(WeightedParams):
    similarity: Literal["cosine", "bm25"] = "cosine"
    k: int = Field(100, gt=0, le=10_000)
    shrink: float = Field(0.0, ge=0, le=1e6)


class ANNParams(Section):
    """``train.<model>.ann``: the FAISS index over a model's item vectors (:mod:`musicrec.models.ann`).

    Built at fit when ``enabled`` and the catalogue has at least ``min_items`` items, saved
    next to the model, and used by serving (``similar``/``recommend``) whenever the loaded
    model has one; evaluation always scores exactly.
    """

    enabled: bool = False
    kind: Literal["hnsw", "ivf", "flat"] = "hnsw"  # flat: exact FAISS inner product (a baseline)
    min_items: int = Field(50_000, gt=0, le=100_000_000)  # smaller catalogues: no index, exact scoring
    hnsw_m: int = Field(32, ge=4, le=256)  # graph neighbours per node
    ef_construction: int = Field(100, ge=8, le=4096)
    ef_search: int = Field(128, ge=1, le=65_536)  # raised to N (+ filtered items) when a query asks more
    ivf_nlist: int = Field(1024, ge=1, le=1_048_576)  # k-means cells (trained on the item vectors)
    nprobe: int = Field(32, ge=1, le=1_048_576)  # cells visited per query
    # OpenMP threads building the index: 1 gives the same bytes on every run (DVC); 0 = all cores, faster
    # (HNSW inserts in parallel: the graph, hence the file and near-tie answers, then differ from run to run)
    build_threads: int = Field(1, ge=0, le=1024)

    @model_validator(mode="after")
    def _nprobe_within_nlist(self) -> ANNParams:
        if self.nprobe > self.ivf_nlist:
            raise ValueError(f"nprobe ({self.nprobe}) must be <= ivf_nlist ({self.ivf_nlist})")
        return self


class ALSParams(WeightedParams):
    factors: int = Field(64, gt=0, le=1024)
    regularization: float = Field(0.05, ge=0, le=1e6)
    alpha: float = Field(2.0, gt=0, le=1e6)
    iterations: int = Field(15, gt=0, le=10_000)
    use_gpu: bool | Literal["auto"] = False  # implicit.gpu: auto falls back to the CPU, true fails without CUDA
    ann: ANNParams = ANNParams()

    @field_validator("use_gpu", mode="before")
    @classmethod
    def _use_gpu(cls, v: Any) -> Any:
        if isinstance(v, bool) or (isinstance(v, str) and v == "auto"):
            return v
        raise ValueError("must be false, true or auto")


class BPRParams(WeightedParams):
    weighting: Weighting = "binary"  # implicit's BPR samples the stored pairs: values are not used
    factors: int = Field(64, gt=0, le=1024)
    learning_rate: float = Field(0.01, gt=0, le=10)
    regularization: float = Field(0.01, ge=0, le=1e6)
    iterations: int = Field(100, gt=0, le=10_000)
    ann: ANNParams = ANNParams()


class EASEParams(WeightedParams):
    weighting: Weighting = "binary"  # HetRec 2K, every artist: nDCG@10 0.229 binary vs 0.214 log1p
    l2: float = Field(500.0, gt=0, le=1e9)
    # dense item x item float64 matrices, 2 * 8 * n^2 bytes: 35,000 items need 19.6 GB (24 GB machines), the
    # MSD protocol's 41,140 songs 25.2 GB (a 32 GB machine: README, "The Million Song Dataset protocol")
    max_items: int = Field(30_000, gt=0, le=60_000)


class RP3BetaParams(WeightedParams):
    weighting: Weighting = "binary"
    alpha: float = Field(1.0, gt=0, le=10)
    beta: float = Field(0.5, ge=0, le=10)
    k: int = Field(100, gt=0, le=10_000)


class ContentParams(WeightedParams):
    tag_weight: float = Field(1.0, ge=0, le=1000)
    audio_weight: float = Field(0.5, ge=0, le=1000)
    # tfidf: sparse TF-IDF tag vectors; tfidf_svd: dense embeddings (truncated SVD of the TF-IDF, svd_dim
    # components, concatenated with the standardised audio features), fitted at train time
    embedding: Literal["tfidf", "tfidf_svd"] = "tfidf"
    svd_dim: int = Field(64, gt=0, le=1024)
    ann: ANNParams = ANNParams()

    @model_validator(mode="after")
    def _ann_needs_dense(self) -> ContentParams:
        if self.ann.enabled and self.embedding != "tfidf_svd":
            raise ValueError("ann.enabled needs embedding: tfidf_svd (FAISS indexes dense vectors)")
        return self


class HybridParams(Section):
    collaborative: str = "als"  # one of collaborative_models()

    def components(self) -> tuple[str, ...]:
        """The registered models the hybrid is built from (their ``train.<name>`` sections are read too)."""
        return (self.collaborative, "content")
    weight_collaborative: float = Field(0.8, ge=0, le=1000)
    weight_content: float = Field(0.2, ge=0, le=1000)
    mmr_lambda: float | None = Field(None, ge=0, le=1)

    @field_validator("collaborative", mode="before")
    @classmethod
    def _collaborative(cls, v: Any) -> Any:
        return check_collaborative(v)


def check_collaborative(v: Any) -> Any:
    """A hybrid's ``collaborative`` param: one of :func:`collaborative_models`."""
    names = collaborative_models()
    if not isinstance(v, str) or v not in names:
        raise ValueError(f"must be one of the collaborative models {', '.join(map(repr, names))}")
    return v


class TierWeights(Section):
    """The blend weights of one activity tier of ``adaptive_hybrid`` (component role -> weight)."""

    collaborative: float = Field(0.0, ge=0, le=1000)
    content: float = Field(0.0, ge=0, le=1000)
    popularity: float = Field(0.0, ge=0, le=1000)

    @model_validator(mode="after")
    def _some_weight(self) -> TierWeights:
        if self.collaborative + self.content + self.popularity <= 0:
            raise ValueError("collaborative, content and popularity must not all be 0")
        return self


class AdaptiveHybridParams(Section):
    """Tier t holds the listeners with tiers[t-1] <= (items in their row) < tiers[t]; weights[t] blends them."""

    # defaults chosen on validation nDCG@10 (default data, per tier) and on the cold-start study's seeds 1, 2
    collaborative: str = "userknn"  # one of collaborative_models()
    tiers: list[Annotated[int, Field(ge=1, le=10**9)]] = Field(default_factory=lambda: [5, 20], max_length=100)
    weights: list[TierWeights] = Field(default_factory=lambda: [
        TierWeights(collaborative=0.6, content=0.2, popularity=0.2),
        TierWeights(collaborative=0.8, content=0.1, popularity=0.1),
        TierWeights(collaborative=1.0, content=0.05, popularity=0.05),
    ])

    @field_validator("collaborative", mode="before")
    @classmethod
    def _collaborative(cls, v: Any) -> Any:
        return check_collaborative(v)

    @field_validator("tiers")
    @classmethod
    def _tiers(cls, v: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("must be strictly ascending item counts (the lower bounds of tiers 2, 3, ...)")
        return v

    @field_validator("weights")
    @classmethod
    def _one_set_per_tier(cls, v: list[TierWeights], info: ValidationInfo) -> list[TierWeights]:
        tiers = info.data.get("tiers")
        if tiers is not None and len(v) != len(tiers) + 1:
            raise ValueError(f"must hold one weight set per tier: len(tiers) + 1 = {len(tiers) + 1} sets, "
                             f"{len(v)} given")
        return v

    def components(self) -> tuple[str, ...]:
        """The registered models the adaptive hybrid is built from (their ``train.<name>`` sections are read too)."""
        return (self.collaborative, "content", "popularity")


ENSEMBLE_SLOTS = 3  # train.ensemble: model_1 .. model_3 with weight_1 .. weight_3


class EnsembleParams(Section):
    """``train.ensemble``: up to :data:`ENSEMBLE_SLOTS` collaborative models, min-max scaled and weighted.

    ``model_<i>`` names a registered collaborative model (``null`` leaves slot 3 empty) that
    is built from its own ``train.<model_i>`` section; ``weight_<i>`` its weight.
    """

    model_1: str = "als"
    weight_1: float = Field(1.0, ge=0, le=1000)
    model_2: str = "ease"
    weight_2: float = Field(1.0, ge=0, le=1000)
    model_3: str | None = "rp3beta"
    weight_3: float = Field(1.0, ge=0, le=1000)

    @field_validator("model_1", "model_2", mode="before")
    @classmethod
    def _member(cls, v: Any) -> Any:
        return check_collaborative(v)

    @field_validator("model_3", mode="before")
    @classmethod
    def _optional_member(cls, v: Any) -> Any:
        return v if v is None else check_collaborative(v)

    @model_validator(mode="after")
    def _distinct_members_with_weight(self) -> EnsembleParams:
        names = [n for n in (getattr(self, f"model_{i}") for i in range(1, ENSEMBLE_SLOTS + 1)) if n is not None]
        if len(set(names)) != len(names):
            raise ValueError(f"model_1 .. model_{ENSEMBLE_SLOTS} must be distinct models (got {names})")
        members = self.members()
        if sum(members.values()) <= 0:
            raise ValueError(f"weight_1 .. weight_{ENSEMBLE_SLOTS} of the models given must not all be 0")
        return self

    def members(self) -> dict[str, float]:
        """Model name -> weight, in slot order (empty slots left out)."""
        return {getattr(self, f"model_{i}"): getattr(self, f"weight_{i}") for i in range(1, ENSEMBLE_SLOTS + 1)
                if getattr(self, f"model_{i}") is not None}

    def components(self) -> tuple[str, ...]:
        """The registered models the ensemble blends (their ``train.<name>`` sections are read too)."""
        return tuple(m for m in (self.model_1, self.model_2, self.model_3) if m is not None)


@dataclass(frozen=True)
class ModelSpec:
    """One registered model."""

    implementation: str  # "module:Class", a Recommender subclass whose ``name`` is the registry key
    Params: type[Section]  # its train.<name> section
    needs_item_features: bool = False  # fit() needs item content features (musicrec.models.features)
    is_collaborative: bool = True  # learns from interactions alone: a hybrid can blend it with content
    color: str = "#7f7f7f"  # its colour in every figure (report PNGs, DVC plot templates, notebooks)


MODELS: dict[str, ModelSpec] = {
    "popularity": ModelSpec("musicrec.models.popularity:PopularityRecommender", PopularityParams, color="#7f7f7f"),
    "itemknn": ModelSpec("musicrec.models.itemknn:ItemKNNRecommender", ItemKNNParams, color="#1f77b4"),
    "userknn": ModelSpec("musicrec.models.userknn:UserKNNRecommender", UserKNNParams, color="#17becf"),
    "als": ModelSpec("musicrec.models.mf:ALSRecommender", ALSParams, color="#d62728"),
    "bpr": ModelSpec("musicrec.models.mf:BPRRecommender", BPRParams, color="#ff7f0e"),
    "ease": ModelSpec("musicrec.models.ease:EASERecommender", EASEParams, color="#2ca02c"),
    "rp3beta": ModelSpec("musicrec.models.rp3beta:RP3BetaRecommender", RP3BetaParams, color="#9467bd"),
    "content": ModelSpec("musicrec.models.content:ContentRecommender", ContentParams,
                         needs_item_features=True, is_collaborative=False, color="#8c564b"),
    "hybrid": ModelSpec("musicrec.models.hybrid:HybridRecommender", HybridParams,
                        needs_item_features=True, is_collaborative=False, color="#e377c2"),
    "adaptive_hybrid": ModelSpec("musicrec.models.adaptive_hybrid:AdaptiveHybridRecommender",
                                 AdaptiveHybridParams, needs_item_features=True, is_collaborative=False,
                                 color="#bcbd22"),
    # blends other collaborative models: not itself a hybrid's collaborative part (no nesting)
    "ensemble": ModelSpec("musicrec.models.ensemble:EnsembleRecommender", EnsembleParams, is_collaborative=False,
                          color="#393b79"),
}


def model_color(name: str) -> str:
    """The colour of model ``name`` in every figure (black for a name the registry does not know)."""
    return MODELS[name].color if name in MODELS else "#000000"


def collaborative_models() -> tuple[str, ...]:
    """The registered models a hybrid can use as its collaborative part."""
    return tuple(name for name, spec in MODELS.items() if spec.is_collaborative)


def model_class(name: str) -> type[Recommender]:
    """The class of registered model ``name`` (imported on first use); ValueError for an unknown name."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    module, _, attr = MODELS[name].implementation.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if getattr(cls, "name", None) != name:
        raise TypeError(f"registry entry {name!r}: {MODELS[name].implementation} has name {cls.name!r}")
    return cls

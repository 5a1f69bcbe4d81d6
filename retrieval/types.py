"""Value objects of retrieval: documents in, passages indexed, hits out; the embedder protocol;
the settings of splitting and indexing (the `retrieval:` section of config.yml)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from retrieval.errors import IndexMismatchError, IndexNotFoundError, RetrievalConfigError

logger = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "hnsw", "ivfpq"]
INDEX_KINDS: tuple[str, ...] = ("auto", "flat", "hnsw", "ivfpq")
IVFPQ_MIN_PASSAGES = 1000


@dataclass(frozen=True, slots=True)
class Document:
    """One knowledge-base document. `format` is "markdown" (headings make sections) or "text".
    `metadata` holds `source` (path relative to the KB), `url` and whatever a record carried."""

    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)
    format: str = "markdown"


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrievable span of a document: `text == document.text[start:end]` (end exclusive).
    `title` is the document title joined with the section headings ("Pets Policy > Fees")."""

    id: str
    doc_id: str
    title: str
    text: str
    start: int
    end: int
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "doc_id": self.doc_id, "title": self.title, "text": self.text,
                "start": self.start, "end": self.end, "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Passage:
        return cls(id=str(data["id"]), doc_id=str(data["doc_id"]), title=str(data["title"]),
                   text=str(data["text"]), start=int(data["start"]), end=int(data["end"]),
                   metadata=dict(data.get("metadata") or {}))


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A passage found for a query; `rank` starts at 1. `score` orders the hits: the dense inner
    product (cosine for normalised vectors), or with hybrid search the reciprocal-rank-fusion
    score. `dense_score` (cosine, when the passage was among the dense candidates) and
    `sparse_score` (BM25) are the parts, for thresholds that need an absolute scale."""

    passage: Passage
    score: float
    rank: int
    dense_score: float | None = None
    sparse_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"passage": self.passage.to_dict(), "score": self.score, "rank": self.rank,
                "dense_score": self.dense_score, "sparse_score": self.sparse_score}


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into float32 vectors, shape (len(texts), dimension). `name` identifies the
    model in an index manifest; `normalize` says whether the vectors have unit length.
    `query=True` marks search queries (asymmetric models add a query prefix)."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def normalize(self) -> bool: ...

    def encode(self, texts: Sequence[str], *, query: bool = False) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class SplitConfig:
    """How documents become passages. Token budgets count whitespace tokens, or the embedder's
    word pieces with `tokenizer="embedder"`; `overlap` tokens of a chunk open the next one."""

    max_tokens: int = 160
    overlap: int = 32
    tokenizer: str = "whitespace"

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise RetrievalConfigError(f"max_tokens must be >= 8, got {self.max_tokens}")
        if not 0 <= self.overlap <= self.max_tokens // 2:
            raise RetrievalConfigError(
                f"overlap must be between 0 and max_tokens/2 ({self.max_tokens // 2}), "
                f"got {self.overlap}")
        if self.tokenizer not in ("whitespace", "embedder"):
            raise RetrievalConfigError(
                f"tokenizer must be 'whitespace' or 'embedder', got {self.tokenizer!r}")


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """Index settings (measured by benchmarks/retrieval_scale.py and on data/kb/qa.json).

    `kind="auto"` picks exact search (flat) up to `flat_max` passages and HNSW above. Flat's
    single-query p50 passes HNSW's at about 11k vectors with the default efSearch 384 (3k with
    efSearch 128; 384-d, 2 cores); flat stays near 1 ms up to 20k, far below the ~15 ms of
    embedding the query, and it is exact, builds instantly and deletes for real. HNSW M=32,
    efConstruction=128, efSearch=384: recall@10 0.954 at p50 2.7 ms on 1M clustered vectors
    (1.0 on 100k; efSearch 128 gives 0.84 on 1M). ivfpq is only used when asked for: it
    trades recall (0.66 at 100k) for memory (48 bytes a vector). HNSW cannot
    delete: removed passages become tombstones filtered at search time, and the graph is
    rebuilt from the live vectors once tombstones exceed `compact_ratio` of it. `hybrid` fuses
    BM25 with the dense ranking (reciprocal rank fusion, constant `rrf_k`); on the demo KB it
    lifts recall@1 from 0.69 to 0.78 (qa.json) and 0.63 to 0.77 (held-out tests/kb_test.json).
    `rrf_k` 20 was chosen on qa.json (recall@5 0.981 vs 0.978 at 60 and 0.976 at 100).
    `gpu=None` moves flat and IVF indexes to a GPU when faiss-gpu and a GPU are present."""

    kind: str = "auto"
    flat_max: int = 20_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 128
    hnsw_ef_search: int = 384
    ivf_nlist: int = 0
    ivf_nprobe: int = 32
    pq_m: int = 0
    compact_ratio: float = 0.2
    hybrid: bool = True
    rrf_k: int = 20
    embed_titles: bool = True
    gpu: bool | None = None
    split: SplitConfig = SplitConfig()

    def __post_init__(self) -> None:
        if self.kind not in INDEX_KINDS:
            raise RetrievalConfigError(f"kind must be one of {', '.join(INDEX_KINDS)}, "
                                       f"got {self.kind!r}")
        ints = ("flat_max", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nprobe",
                "rrf_k")
        bad = [name for name in ints if int(getattr(self, name)) < 1]
        if bad or self.ivf_nlist < 0 or self.pq_m < 0:
            raise RetrievalConfigError(f"{', '.join(bad) or 'ivf_nlist/pq_m'} out of range "
                                       "(counts must be >= 1; ivf_nlist, pq_m >= 0 for auto)")
        if not 0.0 < self.compact_ratio <= 1.0:
            raise RetrievalConfigError(f"compact_ratio must be in (0, 1], got {self.compact_ratio}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> IndexConfig:
        """Build from the `retrieval:` section of config.yml. Split settings may sit at the top
        level (`max_tokens: 160`) or under `split:`. Keys of other components are ignored."""
        data = dict(data or {})
        split_names = {f.name for f in fields(SplitConfig)}
        split = {k: data[k] for k in split_names if k in data}
        split.update(data.get("split") or {})
        names = {f.name for f in fields(cls)} - {"split"}
        values = {k: data[k] for k in names if k in data}
        ignored = sorted(set(data) - names - split_names - {"split"})
        if ignored:
            logger.debug("retrieval.config.ignored keys=%s", ",".join(ignored))
        try:
            return cls(**values, split=SplitConfig(**split))
        except TypeError as exc:
            raise RetrievalConfigError(f"bad retrieval setting: {exc}") from exc

    def choose_kind(self, n_passages: int) -> str:
        """The index kind for `n_passages`: `kind`, or for "auto" flat up to `flat_max`; an
        ivfpq request below IVFPQ_MIN_PASSAGES gets flat."""
        if self.kind == "ivfpq" and n_passages < IVFPQ_MIN_PASSAGES:
            return "flat"  # too few vectors to train codebooks
        if self.kind != "auto":
            return self.kind
        return "flat" if n_passages <= self.flat_max else "hnsw"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


MANIFEST_FORMAT = 1
REBUILD_HINT = "Fix: rebuild the index with `xingkong index --rebuild` (or delete {path})."


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a saved index was built from (manifest.json)."""

    embedder: str
    dimension: int
    normalized: bool
    index_kind: str
    corpus_hash: str | None
    passage_count: int
    document_count: int
    created_at: str
    next_slot: int
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    tombstones: tuple[int, ...] = ()
    faiss_version: str = ""
    metric: str = "inner_product"
    format_version: int = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tombstones"] = list(self.tombstones)
        return out

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read `path`/manifest.json; IndexNotFoundError without one, IndexMismatchError when
        it is of another format."""
        try:
            data = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise IndexNotFoundError(f"No index at {path} (manifest.json missing). Fix: build "
                                     "it with `xingkong index --rebuild`.") from exc
        hint = REBUILD_HINT.format(path=path)
        if data.get("format_version") != MANIFEST_FORMAT:
            raise IndexMismatchError(f"Index at {path} has format {data.get('format_version')}, "
                                     f"this version reads format {MANIFEST_FORMAT}. {hint}")
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["tombstones"] = tuple(int(t) for t in values.get("tombstones", ()))
        return cls(**values)

    def check(self, embedder: Embedder, path: Path | str) -> None:
        """IndexMismatchError naming both sides when `embedder` cannot search this index."""
        built = (self.embedder, self.dimension, self.normalized)
        given = (embedder.name, embedder.dimension, bool(embedder.normalize))
        if built != given:
            raise IndexMismatchError(
                f"Index at {path} was built with embedder '{built[0]}' (dimension {built[1]}, "
                f"normalized={built[2]}), but is loaded with '{given[0]}' (dimension {given[1]}, "
                f"normalized={given[2]}). {REBUILD_HINT.format(path=path)} Or configure the "
                f"embedder '{built[0]}'.")

    def stale_reason(self, embedder: Embedder, config: IndexConfig, path: Path) -> str | None:
        """Why an index with this manifest must be rebuilt for `embedder` and `config`."""
        try:
            self.check(embedder, path)
        except IndexMismatchError as exc:
            return str(exc)
        saved = IndexConfig.from_mapping(self.config)
        if saved.split != config.split or saved.embed_titles != config.embed_titles:
            return "split settings changed"
        if config.choose_kind(self.passage_count) != self.index_kind:
            return f"index kind {self.index_kind} -> {config.choose_kind(self.passage_count)}"
        if self.index_kind == "hnsw" and (saved.hnsw_m, saved.hnsw_ef_construction) != (
                config.hnsw_m, config.hnsw_ef_construction):
            return "HNSW build parameters changed"
        return None

"""A FAISS inner-product index over knowledge-base passages, updated in place and persisted.

Kinds: `flat` (exact IndexFlatIP), `hnsw` (IndexHNSWFlat, inner-product metric), `ivfpq`
(IndexIVFPQ: compressed, approximate, trained at build). `auto` = flat up to
`IndexConfig.flat_max` passages, HNSW above (crossover measured by benchmarks/retrieval_scale.py).
Each passage vector has an int64 key ("slot") never reused, so documents are added and removed
without a rebuild. Flat (in an IndexIDMap2) and IVF (own ids) delete for real. HNSW cannot
delete: removed slots become tombstones that searches skip (an IDSelector), and past
`compact_ratio` of the graph it is rebuilt from the stored live vectors (no re-embedding).
Flat and IVF search on a GPU copy when faiss-gpu and a GPU are there (never required).

On disk: manifest.json (see types.Manifest), passages.jsonl (slot + passage a line),
documents.json (document id -> content hash), index.faiss; a save swaps the directory whole.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.bm25 import BM25, fuse
from retrieval.errors import (CorpusError, IndexMismatchError, MissingDependencyError,
                              RetrievalConfigError)
from retrieval.passages import (corpus_hash, document_hash, embedding_text, load_documents,
                                split_document)
from retrieval.types import Document, Embedder, IndexConfig, Manifest, Passage, SearchHit

logger = logging.getLogger(__name__)

MANIFEST, PASSAGES, DOCUMENTS, VECTORS = ("manifest.json", "passages.jsonl", "documents.json",
                                          "index.faiss")
_ENCODE_BLOCK = 4096
_FUSION_DEPTH = 50
_SERIAL_BATCH = 8  # measured: 1 query on 2 busy cores, 2 OpenMP threads 16-47 ms, 1 thread 0.2-0.6


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError("faiss is not installed. Fix: pip install faiss-cpu "
                                     "(or faiss-gpu-cu12 on a CUDA machine)") from exc
    return faiss


class VectorStore:
    """A FAISS index keyed by int64 slots; inner-product scores, best first."""

    def __init__(self, kind: str, dim: int, config: IndexConfig, index: Any = None,
                 tombstones: Iterable[int] = ()) -> None:
        self.faiss = import_faiss()
        self.kind, self.dim, self.config = kind, dim, config
        self.index = index if index is not None else self._empty(kind)
        self.tombstones: set[int] = set(tombstones)
        self._selector: Any = None  # (IDSelectorBatch, IDSelectorNot) over the tombstones
        self._gpu: Any = None  # (resources, GPU index) when in use
        self._want_gpu = config.gpu is not False and kind in ("flat", "ivfpq")

    def _empty(self, kind: str) -> Any:
        faiss = self.faiss
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.config.hnsw_ef_construction
            return faiss.IndexIDMap2(inner)
        return None  # ivfpq: created by train()

    @property
    def size(self) -> int:
        """Live vectors (tombstones excluded)."""
        return (self.index.ntotal if self.index is not None else 0) - len(self.tombstones)

    def train(self, vectors: np.ndarray) -> None:
        """IVF-PQ only: learn the coarse quantizer and codebooks from `vectors`."""
        faiss, n = self.faiss, len(vectors)
        nlist = self.config.ivf_nlist or max(1, min(int(2 * np.sqrt(n)), n // 39))
        m = self.config.pq_m or max(k for k in range(1, self.dim // 8 + 1) if self.dim % k == 0)
        if self.dim % m:
            raise RetrievalConfigError(f"pq_m={m} must divide the dimension {self.dim}")
        nbits = 8 if n >= 256 * 39 else max(4, min(8, int(np.log2(max(n // 39, 16)))))
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(self.dim), self.dim, nlist, m, nbits,
                                 faiss.METRIC_INNER_PRODUCT)
        for params in (index.cp, index.pq.cp):  # k-means on a sample: minutes -> seconds
            params.niter, params.max_points_per_centroid = 10, 64
        index.train(vectors)
        self.index = index
        logger.info("retrieval.index.ivfpq_trained n=%d nlist=%d m=%d nbits=%d", n, nlist, m, nbits)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if self.index is None:  # IVF-PQ trains on its first vectors
            self.train(vectors)
        self.index.add_with_ids(vectors, keys.astype(np.int64))
        self._gpu = None

    def remove(self, keys: Iterable[int]) -> None:
        keys = [int(k) for k in keys]
        if keys and self.kind == "hnsw":
            self.tombstones.update(keys)
            self._selector = None
            if len(self.tombstones) > self.config.compact_ratio * max(self.index.ntotal, 1):
                self.compact()
        elif keys and self.index is not None:
            self.index.remove_ids(np.asarray(keys, dtype=np.int64))
            self._gpu = None

    def compact(self) -> None:
        """HNSW: rebuild the graph from the stored live vectors, dropping tombstones."""
        keys = self.faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vecs = self.index.index.reconstruct_n(0, self.index.ntotal)
        live = ~np.isin(keys, np.fromiter(self.tombstones, np.int64, len(self.tombstones)))
        logger.info("retrieval.index.compact live=%d dropped=%d", live.sum(), len(self.tombstones))
        self.index, self.tombstones = self._empty(self.kind), set()
        self._selector = self._gpu = None
        if live.any():
            self.index.add_with_ids(vecs[live], keys[live])

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, keys) of shape (n, k'), k' = min(k, size); missing entries have key -1."""
        k = min(k, self.size)
        if k <= 0 or self.index is None:
            return np.zeros((len(vectors), 0), np.float32), np.zeros((len(vectors), 0), np.int64)
        faiss, params = self.faiss, None
        if self.kind == "hnsw":
            ef = max(self.config.hnsw_ef_search, k)
            if self.tombstones:
                if self._selector is None:
                    batch = faiss.IDSelectorBatch(np.fromiter(self.tombstones, np.int64))
                    self._selector = (batch, faiss.IDSelectorNot(batch))
                params = faiss.SearchParametersHNSW(sel=self._selector[1], efSearch=ef)
            else:
                faiss.downcast_index(self.index.index).hnsw.efSearch = ef
        elif self.kind == "ivfpq":
            self.index.nprobe = min(self.config.ivf_nprobe, self.index.nlist)
        threads = faiss.omp_get_max_threads()
        if len(vectors) <= _SERIAL_BATCH:  # a thread team costs more than a few queries
            faiss.omp_set_num_threads(1)  # (per calling thread: an OpenMP ICV)
        try:
            return self._searcher().search(vectors, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)

    def _searcher(self) -> Any:
        faiss = self.faiss
        if self._want_gpu and self._gpu is None:
            try:
                if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() < 1:
                    raise RuntimeError("no faiss-gpu build or no GPU visible")
                resources = faiss.StandardGpuResources()  # kept alive with the GPU index
                self._gpu = (resources, faiss.index_cpu_to_gpu(resources, 0, self.index))
            except Exception as exc:  # noqa: BLE001 - any GPU failure falls back to the CPU
                log = logger.warning if self.config.gpu else logger.debug
                log("retrieval.index.gpu_unavailable reason=%s using=cpu", exc)
                self._want_gpu = False
        return self._gpu[1] if self._want_gpu and self._gpu is not None else self.index


class KnowledgeIndex:
    """Passages + their vectors (+ BM25 when `config.hybrid`), searchable by text or vector."""

    def __init__(self, embedder: Embedder, config: IndexConfig | None = None) -> None:
        self.embedder = embedder
        self.config = config or IndexConfig()
        self.store: VectorStore | None = None
        self.passages: dict[int, Passage] = {}  # slot -> passage
        self.doc_slots: dict[str, list[int]] = {}
        self.doc_hashes: dict[str, str] = {}
        self.next_slot = 0
        self.corpus_hash: str | None = None
        self.created_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.bm25: BM25 | None = BM25() if self.config.hybrid else None

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def kind(self) -> str:
        return self.store.kind if self.store is not None else self.config.choose_kind(0)

    @classmethod
    def build(cls, documents: Sequence[Document], embedder: Embedder,
              config: IndexConfig | None = None) -> KnowledgeIndex:
        """Split, embed and index `documents` from scratch."""
        self, started = cls(embedder, config), time.perf_counter()
        self._add([(d, self._split(d)) for d in documents])
        self.corpus_hash = self._corpus_hash(documents)
        logger.info("retrieval.index.built kind=%s documents=%d passages=%d seconds=%.2f",
                    self.kind, len(documents), len(self), time.perf_counter() - started)
        return self

    def add_documents(self, documents: Sequence[Document]) -> list[Passage]:
        """Index `documents`; one whose id is already indexed is replaced. Returns new passages."""
        self.remove_documents([d.id for d in documents if d.id in self.doc_slots])
        pairs = [(d, self._split(d)) for d in documents]
        self._add(pairs)
        self.corpus_hash = None
        return [p for _, ps in pairs for p in ps]

    def remove_documents(self, doc_ids: Iterable[str]) -> int:
        """Drop the passages of `doc_ids` (unknown ids are ignored); returns how many."""
        slots = []
        for doc_id in list(doc_ids):
            slots.extend(self.doc_slots.pop(doc_id, []))
            self.doc_hashes.pop(doc_id, None)
        if self.store is not None:
            self.store.remove(slots)
        if self.bm25 is not None:
            self.bm25.remove(slots)
        for slot in slots:
            del self.passages[slot]
        self.corpus_hash = None if slots else self.corpus_hash
        return len(slots)

    def sync(self, documents: Sequence[Document]) -> tuple[int, int]:
        """Make the index hold exactly `documents`, re-embedding only new or changed ones.
        Returns (documents added or replaced, documents removed)."""
        wanted = {d.id for d in documents}
        gone = [d for d in self.doc_hashes if d not in wanted]
        changed = [d for d in documents if self.doc_hashes.get(d.id) != document_hash(d)]
        self.remove_documents(gone)
        self.add_documents(changed)
        self.corpus_hash = self._corpus_hash(documents)
        logger.info("retrieval.index.synced changed=%d removed=%d", len(changed), len(gone))
        return len(changed), len(gone)

    def compact(self) -> None:
        """Drop HNSW tombstones now (it also happens by itself past `compact_ratio`)."""
        if self.store is not None and self.store.tombstones:
            self.store.compact()

    def search(self, queries: Sequence[str] | np.ndarray, top_k: int = 5) -> list[list[SearchHit]]:
        """Best `top_k` passages per query: texts (dense, fused with BM25 when hybrid) or query
        vectors of shape (n, dimension) (dense only)."""
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if isinstance(queries, str):
            raise TypeError("search takes a sequence of queries, not one string")
        texts = None if isinstance(queries, np.ndarray) else list(queries)
        vectors = self._check(queries if texts is None else self.embedder.encode(texts, query=True))
        hybrid = texts is not None and self.bm25 is not None
        depth = max(top_k, _FUSION_DEPTH) if hybrid else top_k
        if self.store is None:
            return [[] for _ in vectors]
        scores, keys = self.store.search(vectors, depth)
        sparse = self.bm25.search(texts or [], depth) if self.bm25 and hybrid else None
        out = []
        for i in range(len(vectors)):
            dense = [(int(k), float(s)) for k, s in zip(keys[i], scores[i]) if k >= 0]
            ranked = (fuse(dense, sparse[i], k=self.config.rrf_k) if sparse is not None
                      else [(k, s, s, None) for k, s in dense])
            out.append([SearchHit(self.passages[k], s, r, d, b)
                        for r, (k, s, d, b) in enumerate(ranked[:top_k], 1)])
        return out

    def manifest(self) -> Manifest:
        return Manifest(
            embedder=self.embedder.name, dimension=self.embedder.dimension,
            normalized=bool(self.embedder.normalize), index_kind=self.kind,
            corpus_hash=self.corpus_hash, passage_count=len(self.passages),
            document_count=len(self.doc_slots), created_at=self.created_at,
            next_slot=self.next_slot, config=self.config.to_dict(),
            tombstones=tuple(sorted(self.store.tombstones)) if self.store is not None else (),
            faiss_version=import_faiss().__version__)

    def save(self, index_dir: str | Path) -> Path:
        """Write the index to `index_dir`, replacing what was there in one rename."""
        target = Path(index_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            if self.store is not None and self.store.index is not None:
                import_faiss().write_index(self.store.index, str(tmp / VECTORS))
            with open(tmp / PASSAGES, "w", encoding="utf-8") as fh:
                for slot, passage in self.passages.items():
                    row = {"slot": slot, **passage.to_dict()}
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            (tmp / DOCUMENTS).write_text(json.dumps(self.doc_hashes, indent=0), encoding="utf-8")
            manifest = json.dumps(self.manifest().to_dict(), indent=2)
            (tmp / MANIFEST).write_text(manifest, encoding="utf-8")
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info("retrieval.index.saved path=%s passages=%d", target, len(self.passages))
        return target

    @classmethod
    def load(cls, index_dir: str | Path, embedder: Embedder,
             config: IndexConfig | None = None) -> KnowledgeIndex:
        """Open a saved index. IndexMismatchError when `embedder` is not the one it was built
        with (name, dimension or normalisation). `config` overrides the search settings (None
        keeps the saved ones); the built kind and split settings stay as saved."""
        path = Path(index_dir)
        manifest = Manifest.read(path)
        manifest.check(embedder, path)
        self = cls(embedder, config or IndexConfig.from_mapping(manifest.config))
        self.created_at, self.corpus_hash, self.next_slot = (
            manifest.created_at, manifest.corpus_hash, manifest.next_slot)
        has_vectors = (path / VECTORS).exists()
        index = import_faiss().read_index(str(path / VECTORS)) if has_vectors else None
        self.store = VectorStore(manifest.index_kind, manifest.dimension, self.config, index,
                                 manifest.tombstones)
        with open(path / PASSAGES, encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                passage = Passage.from_dict(row)
                self.passages[int(row["slot"])] = passage
                self.doc_slots.setdefault(passage.doc_id, []).append(int(row["slot"]))
        self.doc_hashes = json.loads((path / DOCUMENTS).read_text(encoding="utf-8"))
        if self.bm25 is not None:
            self.bm25.add(list(self.passages), [self._text(p) for p in self.passages.values()])
        return self

    # ------------------------------------------------------------ internals

    def _split(self, doc: Document) -> list[Passage]:
        lengths = getattr(self.embedder, "token_lengths", None)
        use = lengths if self.config.split.tokenizer == "embedder" else None
        return split_document(doc, self.config.split, token_lengths=use)

    def _text(self, passage: Passage) -> str:
        return embedding_text(passage, with_title=self.config.embed_titles)

    def _corpus_hash(self, documents: Sequence[Document]) -> str:
        return corpus_hash(documents, self.config.split, embed_titles=self.config.embed_titles)

    def _check(self, vectors: Any) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = self.embedder.dimension
        if vectors.ndim != 2 or vectors.shape[1] != dim:
            raise IndexMismatchError(f"Vectors of shape {vectors.shape} do not fit this index "
                                     f"of dimension {dim} (embedder '{self.embedder.name}').")
        return vectors

    def _add(self, pairs: list[tuple[Document, list[Passage]]]) -> None:
        if len({d.id for d, _ in pairs}) != len(pairs):
            raise CorpusError("Duplicate document ids in one batch: give documents distinct ids.")
        passages = [p for _, ps in pairs for p in ps]
        slots = list(range(self.next_slot, self.next_slot + len(passages)))
        texts = [self._text(p) for p in passages]
        if self.store is None:  # the first passages fix the kind ("auto": by their count)
            kind = self.config.choose_kind(len(passages))
            self.store = VectorStore(kind, self.embedder.dimension, self.config)
        if passages:
            vectors = np.concatenate([self._check(self.embedder.encode(texts[i:i + _ENCODE_BLOCK]))
                                      for i in range(0, len(texts), _ENCODE_BLOCK)])
            self.store.add(np.asarray(slots, dtype=np.int64), vectors)
            if self.bm25 is not None:
                self.bm25.add(slots, texts)
        self.next_slot += len(passages)
        offset = 0
        for doc, ps in pairs:
            self.doc_hashes[doc.id] = document_hash(doc)
            self.doc_slots[doc.id] = slots[offset:offset + len(ps)]
            self.passages.update(zip(slots[offset:offset + len(ps)], ps))
            offset += len(ps)


def build_or_load(kb_dir: str | Path, index_dir: str | Path, embedder: Embedder,
                  config: IndexConfig | None = None, *, rebuild: bool = False,
                  exclude: Sequence[str] = ()) -> KnowledgeIndex:
    """Load the index in `index_dir` when it matches the KB in `kb_dir`; otherwise bring it up
    to date and save it. Same corpus hash and embedder: load only (nothing is embedded).
    Changed documents, same embedder and settings: update in place, re-embedding only the
    changed documents. Another embedder, split setting or index kind, or `rebuild`: rebuild."""
    config = config or IndexConfig()
    documents = load_documents(kb_dir, exclude=exclude)
    wanted = corpus_hash(documents, config.split, embed_titles=config.embed_titles)
    path = Path(index_dir)
    if not rebuild and (path / MANIFEST).exists():
        saved: Manifest | None = None
        try:
            saved = Manifest.read(path)
            reason = saved.stale_reason(embedder, config, path)
        except ValueError as exc:  # another format, or an unreadable manifest
            reason = str(exc)
        if reason is None:
            index = KnowledgeIndex.load(path, embedder, config)
            if index.corpus_hash == wanted:
                if saved is not None and saved.config != config.to_dict():  # search settings
                    index.save(path)
                logger.info("retrieval.index.up_to_date path=%s passages=%d", path, len(index))
                return index
            index.sync(documents)
            index.save(path)
            return index
        logger.warning("retrieval.index.rebuild path=%s reason=%s", path, reason)
    index = KnowledgeIndex.build(documents, embedder, config)
    index.save(path)
    return index

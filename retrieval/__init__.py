"""Knowledge retrieval: Markdown/text/JSON knowledge bases split into passages, embedded with
sentence-transformers and searched with FAISS (exact or HNSW/IVF-PQ), optionally fused with BM25.

    index = build_or_load("data/kb", ".xingkong/index", SentenceTransformerEmbedder())
    hits = index.search(["Can I bring my dog?"], top_k=5)[0]
"""

from retrieval.bm25 import BM25, reciprocal_rank_fusion
from retrieval.embedder import (DEFAULT_MODEL, SentenceTransformerEmbedder, clear_model_cache,
                                get_embedder)
from retrieval.errors import (CorpusError, IndexMismatchError, IndexNotFoundError,
                              MissingDependencyError, RetrievalConfigError, RetrievalError)
from retrieval.index import KnowledgeIndex, VectorStore, build_or_load
from retrieval.passages import (corpus_hash, documents_from_records, embedding_text,
                                load_documents, passage_id, split_document, split_documents)
from retrieval.types import (Document, Embedder, IndexConfig, Manifest, Passage, SearchHit,
                             SplitConfig)

__all__ = [
    "BM25",
    "CorpusError",
    "DEFAULT_MODEL",
    "Document",
    "Embedder",
    "IndexConfig",
    "IndexMismatchError",
    "IndexNotFoundError",
    "KnowledgeIndex",
    "Manifest",
    "MissingDependencyError",
    "Passage",
    "RetrievalConfigError",
    "RetrievalError",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "SplitConfig",
    "VectorStore",
    "build_or_load",
    "clear_model_cache",
    "corpus_hash",
    "documents_from_records",
    "embedding_text",
    "get_embedder",
    "load_documents",
    "passage_id",
    "reciprocal_rank_fusion",
    "split_document",
    "split_documents",
]

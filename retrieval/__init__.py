"""Knowledge retrieval: Markdown/text/JSON knowledge bases split into passages, embedded with
sentence-transformers and searched with FAISS (exact or HNSW/IVF-PQ), optionally fused with BM25;
an extractive reader finds the answer span (or says there is none).

    index = build_or_load("data/kb", ".xingkong/index", SentenceTransformerEmbedder())
    hits = index.search(["Can I bring my dog?"], top_k=5)[0]

    build_knowledge(KnowledgeBuild(kb_dir=Path("data/kb")))   # index, reader, encoder, calibration
    answer = load_answerer("models/knowledge").answer("Can I bring my dog?")   # a sentence
    report = evaluate_kb(load_answerer("models/knowledge"), "tests/kb_test.json")
"""

from retrieval.answerer import (Answer, Answerer, AnswererConfig, AnswerTrace, KnowledgeSettings,
                                load_answerer, read_settings)
from retrieval.bm25 import BM25, reciprocal_rank_fusion
from retrieval.embedder import (DEFAULT_MODEL, SentenceTransformerEmbedder, clear_model_cache,
                                get_embedder)
from retrieval.errors import (CorpusError, IndexMismatchError, IndexNotFoundError,
                              MissingDependencyError, RetrievalConfigError, RetrievalError)
from retrieval.index import KnowledgeIndex, VectorStore, build_or_load
from retrieval.kb_eval import evaluate_kb
from retrieval.knowledge_build import KnowledgeBuild, KnowledgeReport, build_knowledge
from retrieval.passages import (corpus_hash, documents_from_records, embedding_text,
                                load_documents, passage_id, split_document, split_documents)
from retrieval.qa_metrics import QAExample, load_qa
from retrieval.reader import DEFAULT_READER_BASE, Reader, ReaderConfig, ReaderResult, Span
from retrieval.reader_training import TrainConfig, TrainReport, train_reader
from retrieval.sentence_encoder import SentenceEncoderConfig, fit_sentence_encoder
from retrieval.sentence_ranker import Calibration
from retrieval.types import (Document, Embedder, IndexConfig, Manifest, Passage, SearchHit,
                             SplitConfig)

__all__ = [
    "Answer",
    "AnswerTrace",
    "Answerer",
    "AnswererConfig",
    "BM25",
    "Calibration",
    "CorpusError",
    "DEFAULT_MODEL",
    "DEFAULT_READER_BASE",
    "Document",
    "Embedder",
    "IndexConfig",
    "IndexMismatchError",
    "IndexNotFoundError",
    "KnowledgeBuild",
    "KnowledgeIndex",
    "KnowledgeReport",
    "KnowledgeSettings",
    "Manifest",
    "MissingDependencyError",
    "Passage",
    "QAExample",
    "Reader",
    "ReaderConfig",
    "ReaderResult",
    "RetrievalConfigError",
    "RetrievalError",
    "SearchHit",
    "SentenceEncoderConfig",
    "SentenceTransformerEmbedder",
    "Span",
    "SplitConfig",
    "TrainConfig",
    "TrainReport",
    "VectorStore",
    "build_knowledge",
    "build_or_load",
    "clear_model_cache",
    "corpus_hash",
    "documents_from_records",
    "embedding_text",
    "evaluate_kb",
    "fit_sentence_encoder",
    "get_embedder",
    "load_answerer",
    "load_documents",
    "load_qa",
    "passage_id",
    "read_settings",
    "reciprocal_rank_fusion",
    "split_document",
    "split_documents",
    "train_reader",
]

"""Ingest a knowledge base and split it into passages.

Sources: Markdown (`# Title`, `##` sections), plain text, JSON (a list of records, or an object
with a `documents`/`records` list) and JSONL (one record a line). A record has `text` (or
`content`), optional `title`, `id`, `url` and `metadata`. A SQuAD-shaped JSON file (a QA set
such as data/kb/qa.json) is not knowledge and is skipped.

Splitting works per section (the text under a heading), packing whitespace tokens up to
`max_tokens` and preferring to cut at paragraph, then line or sentence, then clause boundaries;
the next chunk starts `overlap` tokens earlier, snapped to a sentence start when one is near.
A passage is always a contiguous span: `passage.text == document.text[start:end]`.

Passage ids hash (document id, section heading path, chunk index), so they stay the same when
other documents (or other sections) change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from retrieval.errors import CorpusError
from retrieval.types import Document, Passage, SplitConfig

logger = logging.getLogger(__name__)

SUFFIXES: dict[str, str] = {".md": "markdown", ".markdown": "markdown", ".txt": "text",
                            ".json": "json", ".jsonl": "jsonl"}
TITLE_SEPARATOR = " > "
TokenLengths = Callable[[Sequence[str]], Sequence[int]]

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_TOKEN = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")
_CLAUSE_END = re.compile(r"[,;:]$")


# ---------------------------------------------------------------- loading

def load_documents(source: str | Path, *, exclude: Sequence[str] = ()) -> list[Document]:
    """Read a file or every supported file under a directory (sorted, hidden files skipped).
    `exclude` holds glob patterns matched against paths relative to `source`."""
    root = Path(source)
    if not root.exists():
        raise CorpusError(f"Knowledge base '{root}' does not exist. Fix: point kb_dir at a "
                          "directory of .md/.txt/.json/.jsonl files.")
    if root.is_file():
        return read_file(root, rel=root.name)
    docs: list[Document] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if (not path.is_file() or path.suffix.lower() not in SUFFIXES
                or any(part.startswith(".") for part in path.relative_to(root).parts)
                or any(fnmatch(rel, pattern) for pattern in exclude)):
            continue
        docs.extend(read_file(path, rel=rel))
    _check_unique(docs)
    logger.info("retrieval.corpus.loaded root=%s documents=%d", root, len(docs))
    return docs


def read_file(path: Path, *, rel: str) -> list[Document]:
    """Documents of one file; `rel` (its path inside the KB) becomes the document id."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CorpusError(f"{path}: unsupported file type (use {', '.join(SUFFIXES)})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot read as UTF-8 text ({exc})") from exc
    if kind in ("markdown", "text"):
        title = markdown_title(text) if kind == "markdown" else None
        return [Document(rel, title or _title_from_stem(path.stem), text, {"source": rel}, kind)]
    if kind == "jsonl":
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                records.append(_parse_json(line, f"{path}:{n}"))
        return documents_from_records(records, source=rel)
    data = _parse_json(text, str(path))
    if _is_qa_set(data):
        logger.info("retrieval.corpus.skip_qa_set path=%s", path)
        return []
    if isinstance(data, Mapping):
        data = data.get("documents", data.get("records"))
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected a list of records or an object with a "
                          "'documents' list")
    return documents_from_records(data, source=rel)


def documents_from_records(records: Iterable[Any], *, source: str) -> list[Document]:
    """Documents from dict records (`text`/`content`, `title`, `id`, `url`, `metadata`).
    The id is the record's `id`, else its `url`, else source#title, else source#position."""
    docs = []
    for n, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise CorpusError(f"{source} record {n}: expected an object, "
                              f"got {type(record).__name__}")
        text = record.get("text", record.get("content"))
        if not isinstance(text, str):
            raise CorpusError(f"{source} record {n}: missing 'text' string")
        title = str(record.get("title") or "")
        doc_id = record.get("id") or record.get("url") or (
            f"{source}#{title}" if title else f"{source}#{n}")
        meta = dict(record.get("metadata") or {})
        meta["source"] = source
        if record.get("url"):
            meta["url"] = record["url"]
        fmt = str(record.get("format") or "text")
        docs.append(Document(str(doc_id), title or str(doc_id), text, meta, fmt))
    _check_unique(docs)
    return docs


def markdown_title(text: str) -> str | None:
    """The first level-1 heading, if any."""
    for _, _, level, heading in _headings(text):
        if level == 1:
            return heading
    return None


# ---------------------------------------------------------------- splitting

def split_documents(docs: Iterable[Document], config: SplitConfig = SplitConfig(), *,
                    token_lengths: TokenLengths | None = None) -> list[Passage]:
    out: list[Passage] = []
    for doc in docs:
        out.extend(split_document(doc, config, token_lengths=token_lengths))
    return out


def split_document(doc: Document, config: SplitConfig = SplitConfig(), *,
                   token_lengths: TokenLengths | None = None) -> list[Passage]:
    """Passages of one document. `token_lengths(words)` gives each whitespace word's length in
    model tokens (None: every word counts 1)."""
    passages: list[Passage] = []
    seen: dict[tuple[str, ...], int] = {}
    for path, start, end in sections(doc):
        occurrence = seen.get(path, 0)
        seen[path] = occurrence + 1
        key = path if occurrence == 0 else (*path, f"#{occurrence + 1}")
        title = TITLE_SEPARATOR.join((doc.title, *path)) if path else doc.title
        meta = {**doc.metadata, "doc_title": doc.title, "section_path": list(path)}
        for index, (s, e) in enumerate(_chunks(doc.text, start, end, config, token_lengths)):
            passages.append(Passage(passage_id(doc.id, key, index), doc.id, title,
                                    doc.text[s:e], s, e, {**meta, "chunk": index}))
    return passages


def sections(doc: Document) -> list[tuple[tuple[str, ...], int, int]]:
    """(heading path, body start, body end) of each non-empty section; the path leaves out the
    level-1 heading that is the document title. Plain text is one section with path ()."""
    text = doc.text
    if doc.format != "markdown":
        return _trimmed([((), 0, len(text))], text)
    out: list[tuple[tuple[str, ...], int, int]] = []
    stack: list[tuple[int, str]] = []
    body_start = 0
    title_used = False
    for line_start, line_end, level, heading in _headings(text):
        out.append((tuple(h for _, h in stack), body_start, line_start))
        stack = [(lv, h) for lv, h in stack if lv < level]
        if level == 1 and not title_used and heading == doc.title:
            title_used = True  # the title heading opens the document, it is not a section
        else:
            stack.append((level, heading))
        body_start = line_end
    out.append((tuple(h for _, h in stack), body_start, len(text)))
    return _trimmed(out, text)


def passage_id(doc_id: str, section_path: Sequence[str], chunk_index: int) -> str:
    key = "\x1f".join((doc_id, "\x1e".join(section_path), str(chunk_index)))
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


def embedding_text(passage: Passage, *, with_title: bool = True) -> str:
    """What the embedder (and BM25) sees: the title line, then the passage text."""
    return f"{passage.title}\n{passage.text}" if with_title and passage.title else passage.text


def document_hash(doc: Document) -> str:
    payload = json.dumps([doc.id, doc.title, doc.text, doc.format, doc.metadata],
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def corpus_hash(docs: Iterable[Document], config: SplitConfig, **extra: Any) -> str:
    """Changes when any document, the split settings or an `extra` setting changes."""
    digest = hashlib.sha256(json.dumps([asdict(config), extra], sort_keys=True,
                                       default=str).encode("utf-8"))
    for doc_id, doc_digest in sorted((d.id, document_hash(d)) for d in docs):
        digest.update(f"{doc_id}\0{doc_digest}\n".encode("utf-8"))
    return digest.hexdigest()


# ---------------------------------------------------------------- internals

def _headings(text: str) -> Iterable[tuple[int, int, int, str]]:
    """(line start, line end, level, heading text) of ATX headings outside fenced code."""
    offset = 0
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        fence_match = _FENCE.match(stripped)
        if fence_match:
            marker = fence_match.group(1)
            fence = None if fence == marker else (fence or marker)
        elif fence is None:
            match = _HEADING.match(stripped)
            if match:
                yield offset, offset + len(line), len(match.group(1)), match.group(2).strip()
        offset += len(line)


def _trimmed(spans: list[tuple[tuple[str, ...], int, int]],
             text: str) -> list[tuple[tuple[str, ...], int, int]]:
    out = []
    for path, start, end in spans:
        body = text[start:end]
        stripped = body.strip()
        if stripped:
            lead = len(body) - len(body.lstrip())
            out.append((path, start + lead, start + lead + len(stripped)))
    return out


def _chunks(text: str, start: int, end: int, config: SplitConfig,
            token_lengths: TokenLengths | None) -> list[tuple[int, int]]:
    """Char spans of the chunks of text[start:end] (see the module docstring)."""
    spans = [(m.start(), m.end()) for m in _TOKEN.finditer(text, start, end)]
    n = len(spans)
    if n == 0:
        return []
    words = [text[s:e] for s, e in spans]
    weights = [max(1, int(w)) for w in token_lengths(words)] if token_lengths else [1] * n
    cum = [0]
    for w in weights:
        cum.append(cum[-1] + w)
    # prefs[k]: how good it is to cut before token k (3 paragraph, 2 line/sentence, 1 clause)
    prefs = [0] * (n + 1)
    for k in range(1, n):
        gap = text[spans[k - 1][1]:spans[k][0]]
        if gap.count("\n") >= 2:
            prefs[k] = 3
        elif "\n" in gap or _SENTENCE_END.search(words[k - 1]):
            prefs[k] = 2
        elif _CLAUSE_END.search(words[k - 1]):
            prefs[k] = 1
    out: list[tuple[int, int]] = []
    i = 0
    while True:
        j_max = i + 1
        while j_max < n and cum[j_max + 1] - cum[i] <= config.max_tokens:
            j_max += 1
        if j_max >= n:
            out.append((spans[i][0], spans[n - 1][1]))
            return out
        min_fill = cum[i] + config.max_tokens // 2
        cut = max((k for k in range(i + 1, j_max + 1) if cum[k] >= min_fill or k == j_max),
                  key=lambda k: (prefs[k], k))
        out.append((spans[i][0], spans[cut - 1][1]))
        nxt = cut
        while nxt - 1 > i and cum[cut] - cum[nxt - 1] <= config.overlap:
            nxt -= 1
        snapped = [k for k in range(nxt, cut) if prefs[k] >= 2]
        i = snapped[0] if snapped else nxt


def _title_from_stem(stem: str) -> str:
    words = re.sub(r"[_\-]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: invalid JSON ({exc.msg} at line {exc.lineno} "
                          f"column {exc.colno})") from exc


def _is_qa_set(data: Any) -> bool:
    if not isinstance(data, Mapping) or not isinstance(data.get("data"), list):
        return False
    first = data["data"][0] if data["data"] else {}
    return isinstance(first, Mapping) and "paragraphs" in first


def _check_unique(docs: Sequence[Document]) -> None:
    seen: dict[str, str] = {}
    for doc in docs:
        source = str(doc.metadata.get("source", "?"))
        if doc.id in seen:
            raise CorpusError(f"Duplicate document id '{doc.id}' in {seen[doc.id]} and {source}. "
                              "Fix: give the records distinct 'id' fields.")
        seen[doc.id] = source

"""How the knowledge index scales: flat (exact) vs HNSW vs IVF-PQ, and what embedding costs.

    python benchmarks/retrieval_scale.py                       # 10k and 100k vectors, ~3 min
    python benchmarks/retrieval_scale.py --sizes 1000000       # 1M: the HNSW build takes long

Per size, on synthetic clustered unit vectors (a Gaussian mixture with a decaying spectrum,
randomly rotated: about 30 effective dimensions, like sentence embeddings, so approximate
search has a real job): build time, index size (serialised bytes) and process RSS, single-query
search latency p50/p99 (after a warm-up, through retrieval.index.VectorStore, i.e. the
library's own path, which runs single queries on one OpenMP thread), and recall@k against
exact search; HNSW over a sweep of efSearch, IVF-PQ over nprobe. The flat->HNSW crossover is
the smallest measured size where flat p50 exceeds HNSW's p50 (at the library's efSearch).
Then MiniLM's embedding cost on ~200 real sentences of data/kb. `--no-synthetic` indexes the
real KB passages instead (sizes capped at the corpus). Prints ONE JSON line and appends it to
benchmarks/results/retrieval_scale.jsonl.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import emit, environment  # noqa: E402
from retrieval.index import VectorStore, import_faiss  # noqa: E402
from retrieval.types import IndexConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "retrieval_scale.jsonl"
WARMUP = 20
DEFAULTS = IndexConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    p.add_argument("--sizes", type=ints, default=[10_000, 100_000],
                   help="comma list of corpus sizes (e.g. 10000,100000,1000000)")
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--iterations", type=int, default=1, help="passes over the query set")
    p.add_argument("--device", default="cpu", help="device of the embedding benchmark")
    p.add_argument("--kinds", default="flat,hnsw,ivfpq")
    p.add_argument("--crossover-sizes", type=ints, default=[1000, 2000, 5000],
                   help="extra small sizes, flat and HNSW (library efSearch) latency only")
    p.add_argument("--hnsw-m", type=int, default=DEFAULTS.hnsw_m)
    p.add_argument("--ef-construction", type=int, default=DEFAULTS.hnsw_ef_construction)
    p.add_argument("--ef-search", type=ints, default=[32, 64, 128, 256, 384])
    p.add_argument("--nprobe", type=ints, default=[8, 32])
    p.add_argument("--build-threads", type=int, default=1,
                   help="OpenMP threads for builds (0: faiss default, all cores). 1 by default: "
                        "on a shared 2-core box a 2-thread team waits on its descheduled "
                        "straggler (measured: IVF-PQ train 0.45 s vs 2.6 s, HNSW 10k 4.9 vs 7.0 s)")
    p.add_argument("--embed-sentences", type=int, default=200, help="0 skips the embedding run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


# ------------------------------------------------------------------ data

def clustered_vectors(n: int, dim: int, seed: int, n_clusters: int) -> np.ndarray:
    """Unit vectors from a Gaussian mixture; noise variance decays as 1/(1+j/10)^2 over the
    dimensions and everything is rotated by a fixed random orthogonal matrix."""
    base = np.random.default_rng(1234 + dim)  # the same mixture for data and queries
    centers = base.standard_normal((n_clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    rotation = np.linalg.qr(base.standard_normal((dim, dim)))[0].astype(np.float32)
    decay = (0.3 / (1.0 + np.arange(dim) / 10.0)).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65_536):
        m = min(65_536, n - start)
        noise = (rng.standard_normal((m, dim), dtype=np.float32) * decay) @ rotation
        chunk = centers[rng.integers(0, n_clusters, m)] + noise
        out[start:start + m] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return out


def kb_vectors(device: str) -> tuple[np.ndarray, np.ndarray]:
    """(passage vectors, question vectors) of the real KB and its QA set."""
    from retrieval import IndexConfig as Config
    from retrieval import SentenceTransformerEmbedder, embedding_text, load_documents
    from retrieval import split_documents

    emb = SentenceTransformerEmbedder(device=device)
    passages = split_documents(load_documents(ROOT / "data" / "kb"), Config().split)
    qa = json.loads((ROOT / "data" / "kb" / "qa.json").read_text(encoding="utf-8"))
    questions = [q["question"] for a in qa["data"] for p in a["paragraphs"] for q in p["qas"]]
    return emb.encode([embedding_text(p) for p in passages]), emb.encode(questions, query=True)


# ------------------------------------------------------------------ measuring

def rss_bytes() -> dict[str, int]:
    """Current (VmRSS) and peak (VmHWM) resident memory of this process."""
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                out["rss" if line.startswith("VmRSS") else "peak_rss"] = int(line.split()[1]) * 1024
    except OSError:
        import resource

        out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


def index_bytes(store: VectorStore) -> int:
    faiss = import_faiss()
    with tempfile.NamedTemporaryFile(suffix=".faiss") as fh:
        faiss.write_index(store.index, fh.name)
        return os.path.getsize(fh.name)


def latency(store: VectorStore, queries: np.ndarray, k: int, iterations: int) -> dict[str, float]:
    for i in range(min(WARMUP, len(queries))):
        store.search(queries[i:i + 1], k)
    times = []
    for _ in range(iterations):
        for i in range(len(queries)):
            t = time.perf_counter()
            store.search(queries[i:i + 1], k)
            times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4),
            "p99_ms": round(float(np.percentile(ms, 99)), 4)}


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    hits = [len(set(f[f >= 0].tolist()) & set(e.tolist())) for f, e in zip(found, exact)]
    return round(float(np.sum(hits) / exact.size), 4)


def bench_kind(kind: str, x: np.ndarray, queries: np.ndarray, exact: np.ndarray | None,
               args: argparse.Namespace) -> tuple[dict[str, Any], np.ndarray]:
    config = IndexConfig(kind=kind, hnsw_m=args.hnsw_m, hnsw_ef_construction=args.ef_construction,
                         gpu=False)
    keys = np.arange(len(x), dtype=np.int64)
    rss_before = rss_bytes().get("rss", 0)
    started = time.perf_counter()
    store = VectorStore(kind, x.shape[1], config)
    store.add(keys, x)
    result: dict[str, Any] = {"build_s": round(time.perf_counter() - started, 3)}
    result["index_bytes"] = index_bytes(store)
    result["rss_bytes"] = rss_bytes().get("rss", 0)
    result["rss_delta_bytes"] = result["rss_bytes"] - rss_before
    sweep = {"hnsw": ("ef_search", "hnsw_ef_search", args.ef_search),
             "ivfpq": ("nprobe", "ivf_nprobe", args.nprobe)}.get(kind)
    if kind == "ivfpq":
        result.update(nlist=store.index.nlist, pq_m=store.index.pq.M, pq_nbits=store.index.pq.nbits)
    settings = [(None, None)] if sweep is None else [(sweep[1], v) for v in sweep[2]]
    points = []
    found = np.zeros((0, 0), np.int64)
    for field, value in settings:
        if field is not None:
            store.config = dataclasses.replace(config, **{field: value})
        point: dict[str, Any] = {} if field is None else {sweep[0]: value}  # type: ignore[index]
        point.update(latency(store, queries, args.top_k, args.iterations))
        _, found = store.search(queries, args.top_k)
        point["recall_at_k"] = None if exact is None else recall(found, exact)
        points.append(point)
    if sweep is None:
        result.update(points[0])
    else:
        result["sweep"] = points
    del store
    return result, found


def crossover(sizes: list[dict[str, Any]], ef_default: int) -> dict[str, Any]:
    """Smallest measured size where flat p50 > HNSW p50 (library efSearch), and a log-log
    interpolated estimate between the neighbouring sizes."""
    rows = []
    for entry in sizes:
        if "flat" not in entry or "hnsw" not in entry:
            continue
        hnsw = min(entry["hnsw"]["sweep"], key=lambda p: abs(p["ef_search"] - ef_default))
        rows.append((entry["n"], entry["flat"]["p50_ms"], hnsw["p50_ms"], hnsw["ef_search"]))
    out: dict[str, Any] = {"ef_search": rows[0][3] if rows else ef_default,
                           "points": [{"n": n, "flat_p50_ms": f, "hnsw_p50_ms": h}
                                      for n, f, h, _ in rows]}
    first = next((i for i, (_, f, h, _) in enumerate(rows) if f > h), None)
    out["flat_slower_from_n"] = rows[first][0] if first is not None else None
    if first is not None and first > 0:
        (n0, f0, h0, _), (n1, f1, h1, _) = rows[first - 1], rows[first]
        r0, r1 = np.log(f0 / h0), np.log(f1 / h1)  # ratio crosses 0 between n0 and n1
        t = r0 / (r0 - r1)
        out["estimate_n"] = int(round(float(np.exp(np.log(n0) + t * (np.log(n1) - np.log(n0))))))
    elif first == 0:
        out["estimate_n"] = f"<= {rows[0][0]}"
    else:
        out["estimate_n"] = f"> {rows[-1][0]}" if rows else None
    return out


def embedding_cost(n_sentences: int, device: str) -> dict[str, Any]:
    """MiniLM passages/s on real KB sentences and single-query encode latency, with torch's
    default thread count and with one thread."""
    import torch

    from retrieval import SentenceTransformerEmbedder

    files = sorted((ROOT / "data" / "kb").rglob("*.md"))
    text = " ".join(p.read_text(encoding="utf-8") for p in files)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text)
                 if len(s.split()) >= 5 and not s.startswith("#")][:n_sentences]
    emb = SentenceTransformerEmbedder(device=device)
    started = time.perf_counter()
    emb.load()
    load_s = time.perf_counter() - started
    runs = []
    default_threads = torch.get_num_threads()
    for threads in sorted({default_threads, 1}, reverse=True):
        torch.set_num_threads(threads)
        emb.encode(sentences[:16])  # warm-up
        started = time.perf_counter()
        emb.encode(sentences)
        batch_s = time.perf_counter() - started
        single = []
        for s in sentences[:20]:
            t = time.perf_counter()
            emb.encode([s], query=True)
            single.append(time.perf_counter() - t)
        runs.append({"torch_threads": threads,
                     "passages_per_s": round(len(sentences) / batch_s, 1),
                     "single_query_p50_ms": round(float(np.median(single)) * 1e3, 2)})
    torch.set_num_threads(default_threads)
    return {"model": emb.name, "device": emb.device, "sentences": len(sentences),
            "mean_words": round(float(np.mean([len(s.split()) for s in sentences])), 1),
            "load_s": round(load_s, 2), "batch_size": emb.batch_size, "runs": runs}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    faiss = import_faiss()
    if args.build_threads:
        faiss.omp_set_num_threads(args.build_threads)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    report: dict[str, Any] = {
        "benchmark": "retrieval_scale",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "data": "synthetic clustered (n/100 clusters, ~30 effective dims)" if args.synthetic
        else "data/kb passages and qa.json questions, MiniLM", **environment(),
        "crossover_sizes": [], "sizes": []}
    if not args.synthetic:
        real_x, real_q = kb_vectors(args.device)
    small = argparse.Namespace(**{**vars(args), "ef_search": [DEFAULTS.hnsw_ef_search]})
    plan = [(n, small, ["flat", "hnsw"]) for n in args.crossover_sizes if args.synthetic]
    plan += [(n, args, kinds) for n in args.sizes]
    for n, run_args, run_kinds in plan:
        if args.synthetic:
            x = clustered_vectors(n, args.dim, args.seed, max(n // 100, 16))
            queries = clustered_vectors(args.queries, args.dim, args.seed + 1, max(n // 100, 16))
        else:
            x, queries = real_x[:n], real_q[:args.queries]
        entry: dict[str, Any] = {"n": len(x), "dim": x.shape[1]}
        exact = None
        for kind in (["flat"] if "flat" in run_kinds else []) + [k for k in run_kinds
                                                                   if k != "flat"]:
            if kind == "ivfpq" and len(x) < 1000:
                continue
            entry[kind], found = bench_kind(kind, x, queries, exact, run_args)
            if kind == "flat":
                exact = found
            print(f"# n={len(x)} {kind}: {json.dumps(entry[kind])}", file=sys.stderr, flush=True)
        report["sizes" if run_args is args else "crossover_sizes"].append(entry)
        del x
    points = sorted(report.get("crossover_sizes", []) + report["sizes"], key=lambda e: e["n"])
    report["crossover"] = crossover(points, DEFAULTS.hnsw_ef_search)
    report["peak_rss_bytes"] = rss_bytes().get("peak_rss")
    if args.embed_sentences:
        report["embedding"] = embedding_cost(args.embed_sentences, args.device)
    emit(report, args.out, compact=True)
    return report


if __name__ == "__main__":
    main()

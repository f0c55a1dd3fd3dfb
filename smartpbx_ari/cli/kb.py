"""`smartpbx kb import|search|reindex`: the knowledge base from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from smartpbx_ari.config import Settings
from smartpbx_ari.data import packaged


def add_kb_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="kb_action", required=True)
    imp = sub.add_parser("import", help="import Q&A from CSV, JSONL or YAML")
    imp.add_argument("file", help="a .csv (question,answer,category), .jsonl or .yaml file; "
                                  "'demo' = the packaged Korean/English demo")
    imp.add_argument("--generate", action="store_true",
                     help="also give each entry rule-made phrasings (marked generated; "
                     "measured: no gain on the blind domains, so off by default)")
    imp.add_argument("--no-speech", action="store_true",
                     help="do not synthesize the answers into the speech cache now")
    search = sub.add_parser("search", help="hybrid search of the knowledge base")
    search.add_argument("query")
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--json", action="store_true", help="one JSON list of result dicts")
    sub.add_parser("reindex", help="rebuild the indexes from the SQL source of truth")
    sub.add_parser("export", help="approved entries as JSONL on stdout (re-importable)")
    sub.add_parser("review", help="list the operators' pending candidates")
    for verb in ("approve", "reject"):
        p = sub.add_parser(verb, help=f"{verb} a pending candidate")
        p.add_argument("id")


def add_ask_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query")
    parser.add_argument("--session", default="cli", help="session id (multi-turn memory)")
    parser.add_argument("--json", action="store_true", help="the agent's dict as one object")
    parser.add_argument("--phrase", action="store_true",
                        help="let the local LLM rephrase the stored answer (agent.llm_phrasing)")


def run_ask(args: argparse.Namespace, settings: Settings) -> int:
    from smartpbx_ari.ai.agent import AIAgentService, Session
    from smartpbx_ari.ai.llm import Phraser
    from smartpbx_ari.ai.rag import RAGEngine

    phraser = None
    if args.phrase or settings.agent.llm_phrasing:
        phraser = Phraser(settings.agent.llm_model, settings.cache_dir)
    agent = AIAgentService(RAGEngine.open(settings), settings.agent, phraser=phraser)
    # a session (its memory, a clarifying question waiting for "yes" or "1") outlives
    # the process: the next `smartpbx ask --session` answers it
    store = Path(settings.data_dir) / "ask-sessions.json"
    saved = json.loads(store.read_text("utf-8")) if store.is_file() else {}
    if args.session in saved:
        agent.sessions[args.session] = Session.from_dict(saved[args.session])

    async def ask() -> dict[str, object]:
        reply = await agent.respond(args.query, args.session)
        return (await reply.written()).as_dict()

    result = asyncio.run(ask())
    saved[args.session] = agent.sessions[args.session].as_dict()
    store.write_text(json.dumps(saved, ensure_ascii=False), "utf-8")
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        flag = "  (hand over to a person)" if result["hitl_triggered"] else ""
        print(f"[{result['intent']} {result['confidence']:.2f}]{flag}\n{result['response']}")
        for choice in result.get("choices", []):  # type: ignore[attr-defined]
            print(f"  {choice['key']}: {choice['title']}")
    return 0


def ensure_demo_knowledge(settings: Settings) -> str:
    """Import the packaged demo knowledge base when the knowledge base is empty."""
    from smartpbx_ari.ai.knowledge_io import import_file
    from smartpbx_ari.ai.rag import RAGEngine

    engine = RAGEngine.open(settings)
    if len(engine):
        return f"knowledge base has {len(engine)} entries"
    return "demo knowledge base imported: " + import_file(engine, demo_path()).summary()


def run_kb(args: argparse.Namespace, settings: Settings) -> int:
    from smartpbx_ari.ai.rag import RAGEngine

    engine = RAGEngine.open(settings)
    if args.kb_action == "import":
        return _import(engine, args.file, settings, not args.no_speech, args.generate)
    if args.kb_action == "search":
        hits = [h.as_dict() for h in engine.search_hits(args.query, args.top_k)]
        if args.json:
            print(json.dumps(hits, ensure_ascii=False))
        else:
            for h in hits:
                print(f"{h['similarity']:.3f}  [{h['category']}] {h['question']}\n"
                      f"       {h['answer']}")
        return 0
    if args.kb_action == "reindex":
        drift = engine.retriever.check_drift()
        print(f"kb: {len(drift[0])} missing from the index, {len(drift[1])} stale in it")
        print(f"kb: reindexed {engine.reindex()} entries")
        return 0
    return _review(engine, args)


def _review(engine: object, args: argparse.Namespace) -> int:
    from smartpbx_ari.ai import learning
    from smartpbx_ari.ai.rag import RAGEngine
    from smartpbx_ari.store.knowledge import pending_entries

    assert isinstance(engine, RAGEngine)
    if args.kb_action == "export":
        for row in engine.retriever.approved():
            print(json.dumps(row.as_dict(), ensure_ascii=False))
    elif args.kb_action == "review":
        for row in pending_entries(engine.db):
            print(f"{row.id}  [{row.category}] {row.question}\n    -> {row.answer}")
    elif args.kb_action == "approve":
        outcome = learning.approve(engine, args.id)
        merged = f" (merged into {outcome.merged_into})" if outcome.merged_into else ""
        print(f"kb: approved {outcome.id}{merged}")
    else:
        learning.reject(engine, args.id)
        print(f"kb: rejected {args.id}")
    return 0


def _import(engine: object, name: str, settings: Settings, speech: bool = True,
            generate: bool = False) -> int:
    from smartpbx_ari.ai.knowledge_io import import_file
    from smartpbx_ari.ai.rag import RAGEngine

    assert isinstance(engine, RAGEngine)
    path = demo_path() if name == "demo" else Path(name)
    report = import_file(engine, path, progress=_progress, generated=generate)
    print(f"\rkb: {path.name}: {report.summary()}", file=sys.stderr)
    for line, reason in report.skipped:
        print(f"  line {line}: {reason}", file=sys.stderr)
    if speech and settings.tts.cache_mb:
        print(f"kb: speech cache: {_speak_ahead(engine, settings)} new phrase(s) synthesized",
              file=sys.stderr)
    return 0


def _speak_ahead(engine: object, settings: Settings) -> int:
    """Synthesize the answers now, so no call waits for their first sentence."""
    from smartpbx_ari.ai.agent import spoken_phrases
    from smartpbx_ari.ai.rag import RAGEngine
    from smartpbx_ari.call.engine import make_tts, warm_speech

    assert isinstance(engine, RAGEngine)
    tts = make_tts(settings)
    try:
        return asyncio.run(warm_speech(tts, spoken_phrases(engine.db)))
    finally:
        tts.close()


def demo_path() -> Path:
    return packaged("knowledge.yaml")


def _progress(line: int) -> None:
    if sys.stderr.isatty():
        print(f"\rkb: line {line}", end="", file=sys.stderr, flush=True)

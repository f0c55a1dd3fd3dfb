"""Knowledge import: CSV (question,answer,category), JSONL or YAML Q&A.

A bad row is reported with its line and reason, and the rest is imported. Each entry
without a title gets a short spoken one (``ai/clarify.py``); after an import the KB's
confidence profile is measured (``ai/confidence.py``), so no caller waits for it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from smartpbx_ari.ai.clarify import spoken_title
from smartpbx_ari.ai.paraphrase import generate
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.store.knowledge import KnowledgeError, find_id, has_entry

Row = tuple[int, dict[str, Any] | str]  # (line, fields) or (line, why it is unreadable)


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"added {self.added}, updated {self.updated}, skipped {len(self.skipped)}"


def read_rows(path: Path) -> Iterator[Row]:
    text = path.read_text("utf-8-sig")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        yield from _csv_rows(text)
    elif suffix in (".jsonl", ".ndjson"):
        yield from _jsonl_rows(text)
    elif suffix in (".yaml", ".yml"):
        yield from _yaml_rows(text)
    else:
        raise KnowledgeError(f"{path}: unknown format {suffix!r} (csv, jsonl or yaml)")


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"question", "answer"} - set(reader.fieldnames or ())
    if missing:
        raise KnowledgeError(f"CSV header: missing column(s) {', '.join(sorted(missing))}")
    for record in reader:
        yield reader.line_num, {k: v for k, v in record.items() if k is not None}


def _jsonl_rows(text: str) -> Iterator[Row]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            yield n, f"not JSON: {err.msg}"
            continue
        yield n, data if isinstance(data, dict) else "not a JSON object"


def _yaml_rows(text: str) -> Iterator[Row]:
    try:
        docs = yaml.compose(text)
    except yaml.YAMLError as err:
        raise KnowledgeError(f"YAML: {err}") from err
    if docs is None:
        return
    if not isinstance(docs, yaml.SequenceNode):
        raise KnowledgeError("YAML: expected a list of question/answer entries")
    for node in docs.value:
        data = yaml.safe_load(yaml.serialize(node))
        yield node.start_mark.line + 1, data if isinstance(data, dict) else "not a mapping"


def import_file(engine: RAGEngine, path: Path,
                progress: Callable[[int], None] | None = None,
                generated: bool = False) -> ImportReport:
    """Import every row; ``generated``: each entry also gets rule-made phrasings
    (``ai/paraphrase.py``) unless the row brings its own ``generated`` list."""
    report = ImportReport()
    for line, row in read_rows(path):
        if isinstance(row, str):
            report.skipped.append((line, row))
        else:
            if generated and "generated" not in row and row.get("question"):
                row = {**row, "generated": generate(str(row["question"]))}
            _import_row(engine, row, line, report)
        if progress is not None:
            progress(line)
    engine.retriever.refresh_profile()
    return report


def _import_row(engine: RAGEngine, row: dict[str, Any], line: int,
                report: ImportReport) -> None:
    given = str(row.get("id") or "")
    existing = (given if given and has_entry(engine.db, given) else None) or find_id(
        engine.db, str(row.get("question", "")))
    if not row.get("title") and row.get("question"):
        row = {**row, "title": spoken_title(str(row["question"]))}
    try:
        engine.upsert_sync({**row, "id": given or existing}, refresh=False)
    except (KnowledgeError, ValueError) as err:
        report.skipped.append((line, str(err)))
        return
    if existing:
        report.updated += 1
    else:
        report.added += 1

"""The reranker benchmark's bookkeeping, on a design domain with the real retriever: a
reranker that keeps the retriever's order is right exactly as often as the retriever, one
that reverses it less often, and the real USE reranker is timed on every question."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from smartpbx_ari.config import load_settings
from tests.fixtures.scripts import load_script

pytestmark = [pytest.mark.integration, pytest.mark.ai]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_script("bench_rerank")  # (it imports its sibling bench_rag)


def test_the_reranker_bench_counts_a_rerankers_first_against_the_retrievers(
        bench: ModuleType, tmp_path: Path) -> None:
    settings = load_settings(environ={"SMARTPBX_DATA_DIR": str(tmp_path)})
    result = bench.domain("bank", settings, {
        "same": lambda _q, entries: [-float(n) for n in range(len(entries))],
        "reversed": lambda _q, entries: [float(n) for n in range(len(entries))],
        "use": bench.use_scorer(settings)})
    among, first = result["right_in_top_3"], result["first_right"]
    assert 0 < among <= result["questions"]
    assert first["same"] == first["retriever"] > among / 3
    assert first["reversed"] < first["retriever"]
    assert 0 <= first["use"] <= among
    assert set(result["ms_per_question"]) == {"same", "reversed", "use"}
    assert result["ms_per_question"]["use"]["p50"] > 0

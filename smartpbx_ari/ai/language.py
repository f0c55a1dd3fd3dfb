"""Language tags and scripts: a tag's base language, whether a text is Korean.

A call's language is a BCP 47 tag from the routing rules (``ko``, ``en-US``); knowledge
entries, holding phrases, greetings and voices are kept by its base language (``ko``).
"""

from __future__ import annotations

import re

HANGUL_FIRST, HANGUL_LAST = "\uac00", "\ud7a3"  # the precomposed Hangul syllables
_HANGUL = re.compile(f"[{HANGUL_FIRST}-{HANGUL_LAST}]")
_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2})?$")  # what a routing rule may set
# the base languages knowledge is kept in and calls are answered in (STT, voice, greeting)
LANGUAGES = ("en", "ko")


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

"""Confidence that travels between knowledge bases: relative signals, a per-KB profile.

A fused similarity means different things on different knowledge bases (a Korean FAQ's
right answers score where an English FAQ's wrong ones do), so confidence is not one
absolute mapping of it. It is a logistic of two relative signals:

- how far the best entry's similarity stands above the knowledge base's own *impostor*
  level: the profile, measured from the KB itself (each sampled entry's question asked
  against the other entries: the best other entry's similarity, its mean and spread);
- the margin between the best and the second entry, in the same units.

The weights were fitted (``scripts/bench_rag.py --domains``, on the design domains bank
and software plus the demo's dev set; never the measure-only ones) to the chance that the
best entry is right, then shifted so that ``agent.min_confidence`` (0.6) lands where
wrong answers stay at about 2 % on the design domains. Sans-IO: numbers in, numbers out.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PROFILE_SAMPLE = 64  # entries asked against the others to measure a KB's profile
MIN_SPREAD = 0.05  # a spread floor: a tiny KB's few impostors are not a scale
# logistic weights: bias, standing above impostors, margin to the second (both in spreads)
# (the fit's bias 0.418, shifted by logit(0.6) - logit(0.85): confidence 0.6 is a
# fitted chance of 0.85 that the best entry is right)
BIAS, STANDING, MARGIN = -0.912, 1.138, 1.335


@dataclass(frozen=True)
class KbProfile:
    """A knowledge base's impostor level: how well an entry's question matches *another*
    entry (mean and spread of the best other entry's similarity)."""

    impostor: float
    spread: float
    entries: int  # approved entries when it was measured

    @staticmethod
    def neutral() -> KbProfile:
        """Before any entry exists (a KB of one entry has no impostor)."""
        return KbProfile(0.45, 0.12, 0)


def measure_profile(ids: Sequence[str], question_of: Callable[[str], str],
                    others: Callable[[str, str], float], seed: int = 7) -> KbProfile:
    """The profile of a knowledge base: ``others(question, id)`` is the best similarity
    of an entry other than ``id`` for ``question``; a deterministic sample of entries."""
    if len(ids) < 2:
        return replace_entries(KbProfile.neutral(), len(ids))
    sample = list(ids) if len(ids) <= PROFILE_SAMPLE else random.Random(seed).sample(
        list(ids), PROFILE_SAMPLE)
    scores = [others(question_of(i), i) for i in sample]
    return KbProfile(statistics.fmean(scores), max(MIN_SPREAD, statistics.pstdev(scores)),
                     len(ids))


def replace_entries(profile: KbProfile, entries: int) -> KbProfile:
    return KbProfile(profile.impostor, profile.spread, entries)


def standing(similarity: float, profile: KbProfile) -> float:
    """A similarity in the profile's units: spreads above the impostor level."""
    return (similarity - profile.impostor) / profile.spread


def confidence(best: float, second: float, profile: KbProfile) -> float:
    """0..1 from the best and second entries' fused similarities (second 0 if none)."""
    x = (BIAS + STANDING * standing(best, profile)
         + MARGIN * (best - second) / profile.spread)
    return 1.0 / (1.0 + math.exp(-x))

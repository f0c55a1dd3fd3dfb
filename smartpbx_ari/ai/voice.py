"""Which voice speaks: an engine, its voice, a speed and a pitch shift, from one spec.

``piper`` (the neural voice), ``piper:1.15`` (faster), ``piper:0.9:-2`` (slower, two
semitones lower), ``espeak:en-us``, ``espeak:ko``. A pitch shift is done for any engine
by synthesizing slower and resampling back to the original duration.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartpbx_ari.errors import UserFacingError

ENGINES = ("piper", "espeak")


class VoiceSpecError(UserFacingError, ValueError):
    code = "voice-invalid"


@dataclass(frozen=True)
class Voice:
    engine: str = "piper"
    name: str = ""  # espeak-ng: its voice (en-us, ko); piper: a model path, "" = packaged
    speed: float = 1.0  # > 1 talks faster
    pitch: float = 0.0  # semitones
    take: int = 0  # piper: another rendering of the same words (its noise's seed)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise VoiceSpecError(f"voice: {self.engine!r} is not one of {', '.join(ENGINES)}")
        if not 0.5 <= self.speed <= 2.0:
            raise VoiceSpecError(f"voice: speed {self.speed} is not between 0.5 and 2")
        if not -12.0 <= self.pitch <= 12.0:
            raise VoiceSpecError(f"voice: pitch {self.pitch} is not between -12 and 12 "
                                 "semitones")

    @property
    def key(self) -> str:
        """What makes two renderings of a text the same (the speech cache's key)."""
        take = f":{self.take}" if self.take else ""
        return f"{self.engine}:{self.name}:{self.speed:g}:{self.pitch:g}{take}"

    @property
    def pitch_factor(self) -> float:
        return float(2.0 ** (self.pitch / 12.0))

    @classmethod
    def parse(cls, spec: str) -> Voice:
        """``piper[:speed[:pitch]]`` or ``espeak[:voice[:speed[:pitch]]]``."""
        engine, *rest = spec.strip().split(":")
        if engine == "espeak":
            name, rest = (rest[0], rest[1:]) if rest else ("en-us", [])
        else:
            name = ""
        if len(rest) > 2:
            raise VoiceSpecError(f"voice: {spec!r} is not piper[:speed[:pitch]] "
                                 "or espeak[:voice[:speed[:pitch]]]")
        try:
            numbers = [float(x) for x in rest]
        except ValueError:
            raise VoiceSpecError(f"voice: {spec!r}: speed and pitch are numbers") from None
        speed = numbers[0] if numbers else 1.0
        pitch = numbers[1] if len(numbers) > 1 else 0.0
        return cls(engine, name, speed, pitch)

#!/usr/bin/env python3
"""The PBX's own prompts (asterisk-config/sounds/*.wav16), spoken by the product's voice.

The operators' queue plays Asterisk's core sounds for position and expected wait; the
callback offer and its follow-ups have no core sound, so they are rendered here with the
packaged Piper voice (16 kHz, 16-bit mono WAV: Asterisk's ``wav16`` format, no
transcoding for G.722 callers). Edit a text and run again; admins may also replace a file
with a recording of their own under the same name.

    .venv/bin/python scripts/make_prompts.py [--out asterisk-config/sounds]
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import numpy as np

from smartpbx_ari.ai.tts import TextToSpeech
from smartpbx_ari.config import load_settings
from smartpbx_ari.sipcaller.caller import trim_silence, write_wav

RATE = 16000
PAD_S = 0.15
PROMPTS = {
    "callback-offer": "All of our colleagues are busy right now. Please stay on the line, "
                      "or press 1 to leave your number, and we will call you back.",
    "callback-enter": "Please enter the phone number we should call you back on, "
                      "then press the pound key.",
    "callback-thanks": "Thank you. We will call you back as soon as a colleague is free. "
                       "Goodbye.",
    "callback-failed": "Sorry, we could not take that number. You are back in the queue.",
    "all-lines-busy": "All our lines are busy right now. I am connecting you to a person.",
}


async def render(out: Path) -> None:
    tts = TextToSpeech(load_settings().tts, RATE)
    pad = np.zeros(int(RATE * PAD_S), np.int16)
    try:
        for name, text in PROMPTS.items():
            pcm = trim_silence(await tts.synthesize(text))
            write_wav(out / f"{name}.wav16", np.concatenate([pad, pcm, pad]), RATE)
            print(f"{name}.wav16: {len(pcm) / RATE:.1f} s  {text}")
    finally:
        tts.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "asterisk-config/sounds")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    asyncio.run(render(out))


if __name__ == "__main__":
    main()

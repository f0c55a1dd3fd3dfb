#!/usr/bin/env python3
"""The PBX's own prompts (asterisk-config/sounds/*.wav16), spoken by the product's voice.

The operators' queue plays Asterisk's core sounds for position and expected wait; the
callback offer and its follow-ups have no core sound, so they are rendered here with the
packaged Piper voice (16 kHz, 16-bit mono WAV: Asterisk's ``wav16`` format, no
transcoding for G.722 callers). Edit a text and run again; admins may also replace a file
with a recording of their own under the same name.

Korean callers (the dialplan sets the channel's language from the routing rules) hear
``sounds/ko/``: the same prompts, and the core sounds the queue speaks (position,
expected wait, in Sino-Korean numbers: Asterisk's default number grammar says 23 as
"20" "3", which in Korean is 이십 삼), in espeak-ng's Korean voice, the product's.

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
KOREAN = {
    "smartpbx/callback-offer": "지금은 모든 상담원이 통화 중입니다. 잠시만 기다려 주시거나, "
                               "1번을 누르시면 번호를 남기실 수 있고, "
                               "저희가 다시 전화 드리겠습니다.",
    "smartpbx/callback-enter": "다시 연락받으실 전화번호를 누르신 다음, 우물 정자를 눌러 주세요.",
    "smartpbx/callback-thanks": "감사합니다. 상담원이 연결되는 대로 전화 드리겠습니다. "
                                "안녕히 계세요.",
    "smartpbx/callback-failed": "죄송합니다. 그 번호는 받을 수 없었습니다. 다시 대기열로 "
                                "연결해 드립니다.",
    "smartpbx/all-lines-busy": "지금은 모든 회선이 통화 중입니다. 상담원에게 연결해 드리겠습니다.",
    # Asterisk's app_queue: "there are <n> calls waiting", "the estimated hold time is <n>
    # minutes", "you are next", "thank you for your patience"
    "queue-thereare": "고객님 앞에",
    "queue-callswaiting": "명이 기다리고 있습니다.",
    "queue-youarenext": "곧 연결해 드리겠습니다.",
    "queue-holdtime": "예상 대기 시간은 약",
    "queue-minute": "분입니다.",
    "queue-minutes": "분입니다.",
    "queue-seconds": "초입니다.",
    "queue-thankyou": "기다려 주셔서 감사합니다.",
}
SINO = ["영", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]


def korean_digits() -> dict[str, str]:
    """The number words Asterisk's default grammar plays: 0-19, the tens, 100, 1000."""
    words = {str(n): SINO[n] for n in range(10)}
    words.update({str(n): "십" + (SINO[n - 10] if n > 10 else "") for n in range(10, 20)})
    words.update({str(t * 10): SINO[t] + "십" for t in range(2, 10)})
    words.update({"hundred": "백", "thousand": "천"})
    return {f"digits/{name}": word for name, word in words.items()}


async def render(out: Path) -> None:
    tts = TextToSpeech(load_settings().tts, RATE)
    pad = np.zeros(int(RATE * PAD_S), np.int16)
    spoken = [(out, PROMPTS, tts.voice_for("")),
              (out / "ko", KOREAN | korean_digits(), tts.voice_for("ko"))]
    try:
        for folder, texts, voice in spoken:
            for name, text in texts.items():
                pcm = trim_silence(await tts.synthesize(text, voice))
                path = folder / f"{name}.wav16"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_wav(path, np.concatenate([pad, pcm, pad]), RATE)
                print(f"{path.relative_to(out)}: {len(pcm) / RATE:.1f} s  {text}")
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

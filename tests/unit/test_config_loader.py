"""Settings: TOML + SMARTPBX_* environment, validated with messages that name the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from smartpbx_ari.config import ConfigError, FaultSettings, load_settings

pytestmark = pytest.mark.unit


def test_defaults_bind_to_loopback() -> None:
    s = load_settings(environ={})
    assert s.pbx.host == "127.0.0.1"
    assert s.media.bind_host == "127.0.0.1"
    assert s.ari_url == "http://127.0.0.1:8088/ari"


def test_toml_then_env_override(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('data_dir = "/srv/x"\n[pbx]\nsip_port = 5070\nhttp_port = 8090\n')
    s = load_settings(cfg, environ={"SMARTPBX_PBX__SIP_PORT": "5080"})
    assert s.pbx.sip_port == 5080
    assert s.pbx.http_port == 8090
    assert s.data_dir == Path("/srv/x")


def test_calls_are_recorded_unless_turned_off(tmp_path: Path) -> None:
    assert load_settings(environ={}).store.record_calls is True
    assert load_settings(environ={"SMARTPBX_STORE__RECORD_CALLS": "false"}
                         ).store.record_calls is False
    cfg = tmp_path / "c.toml"
    cfg.write_text("[store]\nrecord_calls = false\n")
    assert load_settings(cfg, environ={}).store.record_calls is False
    cfg.write_text('[store]\nrecord_calls = "maybe"\n')
    with pytest.raises(ConfigError, match="store.record_calls: expected bool"):
        load_settings(cfg, environ={})


def test_config_path_from_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ari]\napp = "other"\n')
    assert load_settings(environ={"SMARTPBX_CONFIG": str(cfg)}).ari.app == "other"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SMARTPBX_PBX__SIP_PORT": "abc"}, "pbx.sip_port: expected int, got 'abc'"),
        ({"SMARTPBX_PBX__SIP_PORT": "70000"}, "pbx.sip_port: 70000 is not a port"),
        ({"SMARTPBX_MEDIA__FORMAT": "opus"}, "media.format: 'opus' is not one of"),
        ({"SMARTPBX_PBX__RTP_END": "9000"}, "pbx.rtp_end: must be greater"),
        ({"SMARTPBX_ARI__APP": "bad name"}, "ari.app:"),
        ({"SMARTPBX_RAG__MULTILINGUAL_MODEL": "labse"}, "rag.multilingual_model: "),
        ({"SMARTPBX_RAG__DENSE_WEIGHT_KO": "0.2", "SMARTPBX_RAG__MULTILINGUAL_WEIGHT_KO": "0.95"},
         "rag.multilingual_weight_ko: with"),
        ({"SMARTPBX_RAG__MULTILINGUAL_WEIGHT": "0.8"}, "rag.multilingual_weight: with"),
        ({"SMARTPBX_RAG__KOREAN_WEIGHT": "0.2"}, "rag.multilingual_weight_ko: with"),
        ({"SMARTPBX_RAG__KOREAN_MODEL": "labse"}, "rag.korean_model: "),
        ({"SMARTPBX_STORE__RECORD_CALLS": "sometimes"},
         "store.record_calls: expected bool, got 'sometimes'"),
        ({"SMARTPBX_FAULTS__STT": "explode"}, "faults.stt: "),
        ({"SMARTPBX_FAULTS__TIMES": "-1"}, "faults.times: "),
        ({"SMARTPBX_STT__TIMEOUT_S": "0"}, "stt.timeout_s: "),
        ({"SMARTPBX_STT__PROMPT_BELOW": "1"}, "stt.prompt_below: "),
        ({"SMARTPBX_AGENT__SEARCH_TIMEOUT_S": "60"}, "agent.search_timeout_s: "),
        ({"SMARTPBX_AGENT__READING_CONFIDENCE": "1.5"}, "agent.reading_confidence: "),
        ({"SMARTPBX_STT__HEAR_AGAIN_BELOW": "0"}, "stt.hear_again_below: "),
        ({"SMARTPBX_MEDIA__DEAD_PEER_S": "0.5"}, "media.dead_peer_s: "),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(environ=env)


def test_unknown_key_is_rejected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[pbx]\nsip_prot = 5060\n")
    with pytest.raises(ConfigError, match="pbx.sip_prot: unknown setting"):
        load_settings(cfg, environ={})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[pbx\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(cfg, environ={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_table_expected(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("pbx = 3\n")
    with pytest.raises(ConfigError, match="pbx: expected a table"):
        load_settings(cfg, environ={})


def test_capacity_is_configured_or_seven_calls_per_core_it_may_use() -> None:
    assert load_settings(environ={"SMARTPBX_MEDIA__MAX_CALLS": "3"}).media.capacity == 3
    derived = load_settings(environ={}).media.capacity
    assert derived == 7 * len(os.sched_getaffinity(0))
    with pytest.raises(ConfigError, match="media.max_calls: must be 0"):
        load_settings(environ={"SMARTPBX_MEDIA__MAX_CALLS": "-1"})


def test_faults_are_off_unless_set_and_a_stage_can_be_armed_from_the_environment() -> None:
    assert load_settings(environ={}).faults == FaultSettings()
    assert (FaultSettings().stt, FaultSettings().search, FaultSettings().llm) == ("", "", "")
    armed = load_settings(environ={"SMARTPBX_FAULTS__STT": "hang",
                                   "SMARTPBX_FAULTS__TIMES": "1"}).faults
    assert (armed.stt, armed.times, armed.search) == ("hang", 1, "")


def test_a_hung_model_is_heard_of_within_three_seconds_by_default() -> None:
    # the apology and the alert come at the latest when the STT deadline ends (a decode
    # starts at the end of the turn or before), or the search's after a decode
    settings = load_settings(environ={})
    assert settings.stt.timeout_s < 3.0
    assert settings.agent.search_timeout_s + 0.5 < 3.0  # after a tiny.en decode
    assert settings.media.dead_peer_s > 0  # on by default

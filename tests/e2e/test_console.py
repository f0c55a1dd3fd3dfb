"""The whole HITL flow in a real browser (Debian's chromium, headless, via selenium and
chromium-driver) against `smartpbx serve` and the real Asterisk: a synthetic caller asks
something the knowledge base lacks, the alert appears in the console, the operator types
an answer, the caller hears it. A stored "<script>" in a transcript stays text. The Calls
tab reads at a glance (local time, m:ss, disposition, first question, language; paged; a
row opens the transcript and the recording's player), and the Metrics tab draws the
API's timeline as SVG charts."""

from __future__ import annotations

import asyncio
import io
import math
import os
import shutil
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from smartpbx_ari.config import Settings
from smartpbx_ari.sipcaller.caller import Dial, SyntheticCaller
from smartpbx_ari.store.db import Database
from smartpbx_ari.store.models import Call, Utterance
from smartpbx_ari.store.recordings import recordings_dir, save_recording
from tests.e2e.test_serve import start_serve, stop
from tests.fixtures.ports import free_tcp_port, free_udp_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
PASSWORD = "operator password 1"
ANSWER = "Yes, we sell gift cards in every store."


@pytest.fixture
def console(pbx: object, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`smartpbx serve` with its own (empty) database and a console port; user otto."""
    port = free_tcp_port()
    url = f"sqlite:///{tmp_path / 'console.db'}"
    env = {"SMARTPBX_DATABASE_URL": url, "SMARTPBX_WEB__PORT": str(port),
           "SMARTPBX_AGENT__HITL_WAIT_S": "45"}
    exe = Path(sys.executable).with_name("smartpbx")
    subprocess.run([str(exe), "users", "add", "otto", "--role", "operator", "--email",
                    "otto@example.com"], input=PASSWORD + "\n", text=True, check=True,
                   env={**os.environ, **env}, capture_output=True)
    proc = start_serve(tmp_path / "serve.log", env)
    try:
        yield f"http://127.0.0.1:{port}", url
    finally:
        stop(proc)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "apt-get install chromium chromium-driver"
    options = Options()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--remote-debugging-port={free_udp_port()}", "--window-size=1280,900"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def login(browser: WebDriver, url: str) -> None:
    browser.get(url)
    browser.find_element(By.ID, "login-email").send_keys("otto@example.com")
    browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait = WebDriverWait(browser, 15)
    wait.until(ec.visibility_of_element_located((By.ID, "live")))
    wait.until(ec.text_to_be_present_in_element((By.ID, "link"), "live"))

REPLY_S = 4.5  # the holding phrase takes 3.3 s


def answer_the_alert(browser: WebDriver, question_word: str) -> str:
    wait = WebDriverWait(browser, 40)
    alert = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "li.alert.open")))
    text = alert.text
    assert question_word in text.lower(), text
    alert.find_element(By.CSS_SELECTOR, ".answer-text").send_keys(ANSWER)
    alert.find_element(By.CSS_SELECTOR, ".answer-send").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "toast"), "Answer sent"))
    return text


def operator_line_shown(browser: WebDriver) -> bool:
    WebDriverWait(browser, 20).until(ec.text_to_be_present_in_element(
        (By.CSS_SELECTOR, "#calls"), ANSWER))
    return True


async def test_the_operator_answers_in_the_console_and_the_caller_hears_it(
    console: tuple[str, str], browser: WebDriver, settings: Settings, dial: Dial,
) -> None:
    url, _ = console
    await asyncio.to_thread(login, browser, url)
    caller = SyntheticCaller(settings)
    async with caller.dial(dial) as line:
        await line.wait_quiet(await line.wait_voice(line.answered_at, 10) or 0)
        said = await line.say("Do you sell gift cards?")
        # near the shop's payment entries: the agent may first ask which one is meant;
        # "no" gets one request to rephrase, and the same question again goes to a person
        replies = ["No.", "Do you sell gift cards?"]
        while True:
            reply = await line.wait_voice(said, 15)
            assert reply is not None
            await asyncio.sleep(REPLY_S)  # its first sentence: a hold's music never pauses
            heard = await line.transcribe(reply, time.monotonic())
            if "colleague" in heard.lower() or "hold" in heard.lower():
                break  # "let me connect you with a colleague", then music on hold
            assert replies, f"never handed over, last heard: {heard}"
            await line.wait_quiet(reply)  # a clarifying question: no music after it
            said = await line.say(replies.pop(0))
        shown = await asyncio.to_thread(answer_the_alert, browser, "gift")
        assert "low_confidence" in shown
        assert await asyncio.to_thread(operator_line_shown, browser)
        # the holding phrase, the hold's music, then the operator's answer (the neural
        # voice synthesizes it live): heard in what the caller received since
        heard = ""
        for _ in range(15):
            heard = await line.transcribe(reply, time.monotonic())
            if "gift card" in heard.lower():
                break
            await asyncio.sleep(2)
        assert "gift card" in heard.lower(), heard


def show_call(browser: WebDriver, caller: str, expect: str = "script") -> str:
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="history"]').click()
    wait = WebDriverWait(browser, 15)
    row = wait.until(ec.element_to_be_clickable(
        (By.XPATH, f"//table[@id='history-table']//tr[td[text()='{caller}']]")))
    row.click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "history-transcript"), expect))
    return str(browser.find_element(By.ID, "history-transcript").text)


async def test_a_stored_script_in_a_transcript_renders_as_text(
    console: tuple[str, str], browser: WebDriver,
) -> None:
    url, db_url = console
    payload = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">"
    db = Database(db_url)
    with db.session() as session:
        session.add(Call(call_id="xss-call", caller="xss-caller", callee="1000",
                         start_time=datetime.now(UTC), status="completed"))
        session.flush()
        session.add(Utterance(call_id="xss-call", seq=1, speaker="caller", text=payload,
                              start_time=datetime.now(UTC)))
    db.engine.dispose()
    await asyncio.to_thread(login, browser, url)
    shown = await asyncio.to_thread(show_call, browser, "xss-caller")
    assert payload in shown  # the markup is visible as text ...
    assert browser.execute_script("return window.pwned === undefined")  # ... and never ran
    assert not browser.find_elements(By.CSS_SELECTOR, "#history-transcript img, "
                                                      "#history-transcript script")


def _tone_wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"".join(int(6000 * math.sin(2 * math.pi * 440 * n / rate)).to_bytes(
            2, "little", signed=True) for n in range(int(seconds * rate))))
    return out.getvalue()


def _audio_duration(browser: WebDriver) -> float | None:
    """The player's duration once it has read the audio's header (None until then)."""
    return browser.execute_script(  # type: ignore[no-any-return]
        "const a = document.querySelector('#history-transcript audio.recording');"
        "return a && a.readyState >= 1 && a.src.startsWith('blob:') ? a.duration : null;")


async def test_the_recording_plays_next_to_the_transcript_with_its_disposition(
    console: tuple[str, str], browser: WebDriver, settings: Settings,
) -> None:
    url, db_url = console
    db = Database(db_url)
    call_id = f"{datetime.now(UTC).timestamp():.0f}.99"
    with db.session() as session:
        session.add(Call(call_id=call_id, caller="rec-caller", callee="1000",
                         start_time=datetime.now(UTC), status="handed_off",
                         disposition="queue", disposition_reason="caller asked for a person"))
        session.flush()
        session.add(Utterance(call_id=call_id, seq=1, speaker="caller",
                              text="I want to talk to a person.",
                              start_time=datetime.now(UTC)))
    db.engine.dispose()
    audio = await asyncio.to_thread(save_recording, recordings_dir(settings), call_id,
                                    _tone_wav(3.2))
    try:
        await asyncio.to_thread(login, browser, url)
        shown = await asyncio.to_thread(show_call, browser, "rec-caller", "a person")
        assert "to the queue (caller asked for a person)" in shown
        # fetched with the operator's token, played from a blob: (the CSP allows it)
        duration = await asyncio.to_thread(WebDriverWait(browser, 15).until, _audio_duration)
        assert abs(float(duration) - 3.2) < 0.05
    finally:
        await asyncio.to_thread(audio.unlink)


# ---- the Calls tab read at a glance, and the Metrics tab's charts -----------------------
SEOUL_NOON_ISH = datetime(2026, 11, 28, 7, 31, 6, 509893, tzinfo=UTC)  # 16:31:06 in Seoul
PARCEL = "Where is my parcel? I ordered it last week."


def _seed_calls(db_url: str, count: int) -> None:
    """``count`` ended calls a minute apart, newest "glance-00" at SEOUL_NOON_ISH, each with
    an agent's greeting, then its caller's first question."""
    db = Database(db_url)
    with db.session() as session:
        for n in range(count):
            start = SEOUL_NOON_ISH - timedelta(minutes=n)
            first = PARCEL if n == 0 else f"Question number {n}?"
            session.add(Call(call_id=f"glance-{n:02d}", caller="glance", callee="1000",
                             start_time=start, end_time=start + timedelta(seconds=125.4),
                             duration=125.4 if n == 0 else 61.0 * n, status="completed",
                             language="en" if n % 2 == 0 else "ko",
                             disposition="queue" if n == 0 else "ai",
                             disposition_reason="caller asked for a person" if n == 0 else ""))
            session.flush()
            session.add_all([
                Utterance(call_id=f"glance-{n:02d}", seq=1, speaker="agent",
                          text="Hello, how can I help?", start_time=start),
                Utterance(call_id=f"glance-{n:02d}", seq=2, speaker="caller", text=first,
                          start_time=start + timedelta(seconds=3))])
    db.engine.dispose()


def _rows(browser: WebDriver) -> list[list[str]]:
    return [[td.get_attribute("textContent") or "" for td in row.find_elements(By.TAG_NAME, "td")]
            for row in browser.find_elements(By.CSS_SELECTOR, "#history-table tbody tr")]


def _page_is(browser: WebDriver, label: str) -> None:
    WebDriverWait(browser, 15).until(ec.text_to_be_present_in_element((By.ID, "history-page"),
                                                                      label))


def read_the_calls_tab(browser: WebDriver, recorded: str) -> dict[str, Any]:
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="history"]').click()
    _page_is(browser, "1–25 of 30")
    seen: dict[str, Any] = {"first_page": _rows(browser)}
    table = browser.find_element(By.ID, "history-table").size["width"]
    seen["width_share"] = table / browser.find_element(By.ID, "history").size["width"]
    seen["prev_disabled"] = not browser.find_element(By.ID, "history-prev").is_enabled()
    browser.find_element(By.ID, "history-next").click()
    _page_is(browser, "26–30 of 30")
    seen["second_page"] = _rows(browser)
    seen["next_disabled"] = not browser.find_element(By.ID, "history-next").is_enabled()
    # by keyboard: the row takes the focus and Enter opens it, as a click does
    browser.find_element(By.CSS_SELECTOR, f'tr[data-call-id="{recorded}"]').send_keys(Keys.ENTER)
    WebDriverWait(browser, 15).until(ec.text_to_be_present_in_element(
        (By.ID, "history-transcript"), "Question number 27?"))
    seen["duration"] = WebDriverWait(browser, 15).until(_audio_duration)
    seen["transcript"] = browser.find_element(By.ID, "history-transcript").text
    seen["lines"] = [(line.find_element(By.CLASS_NAME, "speaker").text,
                      line.get_attribute("textContent")) for line in
                     browser.find_elements(By.CSS_SELECTOR, "#history-transcript .transcript-line")]
    browser.find_element(By.ID, "history-prev").click()
    _page_is(browser, "1–25 of 30")
    seen["back"] = _rows(browser)[0][0]
    seen["helpers"] = browser.execute_script(
        "return [clock(59.6), clock(3725), clock(null), clock(0), "
        "localTime('2026-11-28T23:59:59+00:00'), localTime(null), pageLabel(25, 5, 30),"
        "niceTop(0), niceTop(3), niceTop(20), niceTop(1200), niceTop(0.4),"
        "axisTime('2026-11-28T05:00:00+00:00', 3600), axisTime('2026-11-28T15:00:00Z', 86400)]")
    return seen


async def test_the_calls_tab_reads_at_a_glance_pages_and_opens_transcript_and_player(
    console: tuple[str, str], browser: WebDriver, settings: Settings,
) -> None:
    url, db_url = console
    _seed_calls(db_url, 30)
    audio = await asyncio.to_thread(save_recording, recordings_dir(settings), "glance-27",
                                    _tone_wav(2.6))
    # the browser's own zone, not the server's: local time is Seoul's (UTC+9, no DST)
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Seoul"})
    try:
        await asyncio.to_thread(login, browser, url)
        seen = await asyncio.to_thread(read_the_calls_tab, browser, "glance-27")
    finally:
        await asyncio.to_thread(audio.unlink)
    first = seen["first_page"]
    assert len(first) == 25
    assert first[0] == ["2026-11-28 16:31:06", "glance", "2:05",
                        "to the queue (caller asked for a person)", PARCEL, "en"]
    assert first[1] == ["2026-11-28 16:30:06", "glance", "1:01", "AI answered",
                        "Question number 1?", "ko"]
    assert first[24][:3] == ["2026-11-28 16:07:06", "glance", "24:24"]
    assert not any("T07:" in cell or "+00:00" in cell for row in first for cell in row)
    assert seen["width_share"] > 0.95  # the table uses the tab's whole width
    assert seen["prev_disabled"] and seen["next_disabled"]
    second = seen["second_page"]
    assert [row[4] for row in second] == [f"Question number {n}?" for n in range(25, 30)]
    assert second[4][:3] == ["2026-11-28 16:02:06", "glance", "29:29"]
    assert abs(seen["duration"] - 2.6) < 0.05
    assert "2026-11-28 16:04:06 · 27:27 · ko" in seen["transcript"]
    assert seen["lines"] == [("agent", "agentHello, how can I help?"),
                             ("caller", "callerQuestion number 27?")]
    assert seen["back"] == "2026-11-28 16:31:06"
    assert seen["helpers"] == ["1:00", "1:02:05", "", "0:00", "2026-11-29 08:59:59", "",
                               "26–30 of 30", 1, 5, 20, 2000, 0.5, "14:00", "11-29"]


def _seed_hours(db_url: str, now: datetime) -> tuple[datetime, datetime]:
    """Three calls three hours ago (two the AI handled, one to the queue after 8 s on hold;
    replies after 400, 600 and 900 ms) and one an hour ago (abandoned after 20 s on hold,
    a reply after 1200 ms). Returns the two hours' starts."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    busy, quiet = hour - timedelta(hours=3), hour - timedelta(hours=1)
    db = Database(db_url)
    with db.session() as session:
        for n, (disposition, hold) in enumerate((("ai", None), ("ai", None), ("queue", 8.0))):
            session.add(Call(call_id=f"busy-{n}", caller="chart", start_time=busy + timedelta(
                minutes=10 + n), disposition=disposition, hold_s=hold, status="completed"))
        session.add(Call(call_id="quiet", caller="chart", start_time=quiet + timedelta(minutes=5),
                         disposition="abandoned_on_hold", hold_s=20.0, status="completed"))
        session.flush()
        for seq, (call_id, asked, reply_ms) in enumerate((
                ("busy-0", busy + timedelta(minutes=10), 400),
                ("busy-0", busy + timedelta(minutes=11), 600),
                ("busy-1", busy + timedelta(minutes=11), 900),
                ("quiet", quiet + timedelta(minutes=5), 1200))):
            session.add_all([
                Utterance(call_id=call_id, seq=2 * seq, speaker="caller", text="q",
                          start_time=asked, end_time=asked + timedelta(seconds=2)),
                Utterance(call_id=call_id, seq=2 * seq + 1, speaker="agent", text="a",
                          start_time=asked + timedelta(seconds=2, milliseconds=reply_ms))])
    db.engine.dispose()
    return busy, quiet


def _points(browser: WebDriver, chart: str) -> list[tuple[str, int, float, float]]:
    """(series, bucket index, value, y on the chart) of each point drawn."""
    found = []
    for point in browser.find_elements(By.CSS_SELECTOR, f"#chart-{chart} .point"):
        y = point.get_attribute("cy") or point.get_attribute("y")
        found.append((str(point.get_attribute("data-series")),
                      int(point.get_attribute("data-index") or -1),
                      float(point.get_attribute("data-value") or "nan"), float(y or "nan")))
    return found


def read_the_metrics_tab(browser: WebDriver) -> dict[str, Any]:
    browser.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="metrics"]').click()
    WebDriverWait(browser, 15).until(
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#chart-calls rect.point")) == 24)
    timeline = browser.execute_async_script(
        "const done = arguments[0];"
        "fetch('/api/v1/metrics/timeline?period=24h&bucket=1h&utc_offset=540',"
        " {headers: {Authorization:"
        " 'Bearer ' + sessionStorage.getItem('token')}}).then(r => r.json()).then(done);")
    figures = browser.find_element(By.ID, "metrics-figures").text
    ticks = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#chart-calls text.tick")]
    return {"timeline": timeline, "figures": figures, "calls_ticks": ticks, **{
        chart: _points(browser, chart) for chart in ("calls", "containment", "hold", "latency")}}


SERIES = {"calls": {"calls": lambda b: b["calls"]},
          "containment": {"contained": lambda b: b["containment_rate"]},
          "hold": {"p50": lambda b: b["hold_s"]["p50"], "p95": lambda b: b["hold_s"]["p95"]},
          "latency": {"p50": lambda b: b["latency_ms"]["p50"],
                      "p95": lambda b: b["latency_ms"]["p95"]}}


async def test_the_metrics_tab_draws_the_timeline_from_the_api(
    console: tuple[str, str], browser: WebDriver,
) -> None:
    url, db_url = console
    busy, quiet = _seed_hours(db_url, datetime.now(UTC))
    # Seoul (UTC+09:00, no DST): the console asks for buckets of its local hours
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Seoul"})
    await asyncio.to_thread(login, browser, url)
    seen = await asyncio.to_thread(read_the_metrics_tab, browser)
    buckets = seen["timeline"]["data"]
    starts = [datetime.fromisoformat(b["start"]) for b in buckets]
    b3, b1 = starts.index(busy), starts.index(quiet)
    # what was seeded, as the API gives it ...
    assert (buckets[b3]["calls"], buckets[b3]["containment_rate"]) == (3, 0.667)
    assert buckets[b3]["hold_s"] == {"p50": 8.0, "p95": 8.0, "samples": 1}
    assert buckets[b3]["latency_ms"] == {"p50": 600.0, "p95": 900.0, "samples": 3}
    assert (buckets[b1]["calls"], buckets[b1]["containment_rate"]) == (1, 0.0)
    assert sum(b["calls"] for b in buckets) == 4
    # ... and every point drawn is the API's value of its bucket, none missing
    for chart, series in SERIES.items():
        drawn = {(name, i, value) for name, i, value, _ in seen[chart]}
        expected = {(name, i, float(get(b))) for name, get in series.items()
                    for i, b in enumerate(buckets) if get(b) is not None}
        assert drawn == expected, chart
    # higher values are drawn higher (SVG's y grows downwards)
    calls_y = {i: y for _, i, _, y in seen["calls"]}
    assert min(calls_y, key=lambda i: calls_y[i]) == b3
    latency = {(name, i): y for name, i, _, y in seen["latency"]}
    assert latency[("p95", b3)] < latency[("p50", b3)]
    assert latency[("p50", b1)] < latency[("p95", b3)]  # 1200 ms over 900 ms
    contained = {i: y for _, i, _, y in seen["containment"]}
    assert contained[b3] < contained[b1]
    assert "Containment\n50 %" in seen["figures"]
    assert seen["timeline"]["utc_offset"] == 540
    assert seen["calls_ticks"][-1] == f"{(starts[-1].hour + 9) % 24:02d}:00"  # local hours

"""REST handlers for calls and their HITL alerts: the call record, transcript and recording,
the live alerts, and the operators' actions on them (web/actions.py runs those)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from smartpbx_ari.store.calls import CallFilter, call_page, get_call
from smartpbx_ari.store.models import Call
from smartpbx_ari.store.recordings import recording_path, recordings_dir
from smartpbx_ari.web import actions
from smartpbx_ari.web.context import ctx, read_json
from smartpbx_ari.web.route import claims_of, iso, page, when
from smartpbx_ari.web.text import plain


def call_summary(call: Call) -> dict[str, Any]:
    return {"call_id": call.call_id, "caller": call.caller, "callee": call.callee,
            "start_time": iso(call.start_time), "end_time": iso(call.end_time),
            "duration": call.duration, "status": call.status, "language": call.language,
            "end_reason": call.end_reason, "disposition": call.disposition,
            "disposition_reason": call.disposition_reason, "hold_s": call.hold_s}


async def calls(request: web.Request) -> web.Response:
    limit, offset = page(request)
    where = CallFilter(status=request.query.get("status", ""),
                       caller=request.query.get("caller", ""),
                       disposition=request.query.get("disposition", ""),
                       since=when(request, "from"), until=when(request, "to"))
    total, found, questions = await asyncio.to_thread(call_page, ctx(request).db, where,
                                                      limit, offset)
    return web.json_response({"total": total, "limit": limit, "offset": offset, "data": [
        {**call_summary(c), "first_question": questions.get(c.call_id, "")} for c in found]})


async def call_detail(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(get_call, ctx(request).db, request.match_info["call_id"])
    if found is None:
        raise web.HTTPNotFound(text="call_id: no such call")
    call, utterances = found
    audio = recording_path(recordings_dir(ctx(request).settings), call.call_id)
    recorded = await asyncio.to_thread(audio.is_file)
    return web.json_response({**call_summary(call), "cdr": call.cdr,
                              "recording": f"/api/v1/calls/{call.call_id}/recording"
                              if recorded else None, "utterances": [
        {"seq": u.seq, "speaker": u.speaker, "text": u.text, "start": iso(u.start_time),
         "end": iso(u.end_time), "confidence": u.confidence} for u in utterances]})


async def call_recording(request: web.Request) -> web.StreamResponse:
    """The call's audio (WAV); Range requests get 206 and the part asked for."""
    c = ctx(request)
    found = await asyncio.to_thread(get_call, c.db, request.match_info["call_id"])
    if found is None:
        raise web.HTTPNotFound(text="call_id: no such call")
    audio = recording_path(recordings_dir(c.settings), found[0].call_id)
    if not await asyncio.to_thread(audio.is_file):
        why = "recording of calls is off (store.record_calls)" \
            if not c.settings.store.record_calls else "it was not recorded or is not kept yet"
        raise web.HTTPNotFound(text=f"recording: call {found[0].call_id} has none ({why})")
    return web.FileResponse(audio, headers={"Content-Type": "audio/wav",
                                            "Cache-Control": "private, no-store"})


async def alerts(request: web.Request) -> web.Response:
    live = actions.live_alerts(ctx(request))
    return web.json_response({"total": len(live), "data": live})


async def alert_accept(request: web.Request) -> web.Response:
    return await _act(request, "alert_accept", {"alert_id": request.match_info["alert_id"]})


async def alert_close(request: web.Request) -> web.Response:
    return await _act(request, "alert_close", {"alert_id": request.match_info["alert_id"]})


async def alert_answer(request: web.Request) -> web.Response:
    body = await read_json(request, {"text": str}, ("text",))
    return await _act(request, "alert_answer", {"alert_id": request.match_info["alert_id"],
                                                "text": plain(body["text"])})


async def alert_takeover(request: web.Request) -> web.Response:
    return await _act(request, "alert_takeover", {"alert_id": request.match_info["alert_id"]})


async def call_listen(request: web.Request) -> web.Response:
    return await _act(request, "call_listen", {"call_id": request.match_info["call_id"]})


async def call_takeover(request: web.Request) -> web.Response:
    return await _act(request, "call_takeover", {"call_id": request.match_info["call_id"]})


async def call_handback(request: web.Request) -> web.Response:
    return await _act(request, "call_handback", {"call_id": request.match_info["call_id"]})


async def call_hangup(request: web.Request) -> web.Response:
    return await _act(request, "call_hangup", {"call_id": request.match_info["call_id"]})


async def _act(request: web.Request, name: str, args: dict[str, Any]) -> web.Response:
    status, body = await actions.run(ctx(request), claims_of(request), name, args)
    return web.json_response(body, status=status)

"""Hostile input to the API, as the outside probe sent it (issue 16): every case is a 400
(or 415) in the ``{"error": {...}}`` shape naming the field or the problem, never a 500."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.config import Settings
from smartpbx_ari.web.api import ROUTES
from tests.fixtures.web_app import PASSWORD, WebUnderTest, make_engine, running_web
from tests.integration.test_api import call, token

pytestmark = [pytest.mark.integration]
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def input_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RAGEngine]:
    return make_engine(tmp_path_factory.mktemp("input"))


@pytest.fixture
async def web(input_engine: tuple[Settings, RAGEngine]) -> AsyncIterator[WebUnderTest]:
    async with running_web(*input_engine) as under_test:
        yield under_test


async def raw(http: aiohttp.ClientSession, method: str, url: str, data: bytes | str,
              headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    async with http.request(method, url, data=data, headers=headers) as r:
        assert r.content_type == "application/json", (r.status, await r.text())
        body = await r.json()
        return r.status, body["error"]


@pytest.mark.parametrize(("data", "content_type", "status", "message"), [
    ('{"email": "\\ud800", "password": "x"}', "application/json", 400,
     "email: not valid Unicode (a lone surrogate)"),
    ('{"email": "a\\u0000b", "password": "x"}', "application/json", 400,
     "email: NUL characters are not allowed"),
    ("[" * 20000 + "]" * 20000, "application/json", 400, "body: nested too deeply"),
    ('{"email": "a", "password": "b"}', "application/json; charset=x-evil", 400,
     "Content-Type: charset x-evil is not supported (JSON is UTF-8)"),
    (b'{"email": "\xff"}', "application/json", 400, "body: not UTF-8"),
    ('{"email": ' + "1" * 5000 + "}", "application/json", 400, "body: not valid JSON"),
    ('{"email": "a", "password": "b"}', "text/plain", 415,
     "Content-Type: expected application/json (got text/plain)"),
    (b'{"email": "a", "password": "b"}', "", 415,
     "Content-Type: expected application/json (got application/octet-stream)"),
])
async def test_a_hostile_login_body_is_a_400_naming_the_problem(
        web: WebUnderTest, http: aiohttp.ClientSession, data: str | bytes, content_type: str,
        status: int, message: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    got = await raw(http, "POST", f"{web.url}/api/v1/auth/login", data, headers)
    assert got == (status, {"code": "bad-request" if status == 400
                            else "unsupported-media-type", "message": message})


async def test_every_json_route_shares_the_reader(web: WebUnderTest,
                                                  http: aiohttp.ClientSession) -> None:
    otto, ada = await token(web, http, "otto"), await token(web, http, "ada")
    bearer = {**JSON, "Authorization": f"Bearer {otto}"}
    status, err = await raw(http, "POST", f"{web.url}/api/v1/agent/query",
                            '{"query": "hello \\ud800"}', bearer)
    assert (status, err["message"]) == (400, "query: not valid Unicode (a lone surrogate)")
    status, err = await raw(http, "POST", f"{web.url}/api/v1/knowledge",
                            "[" * 20000 + "]" * 20000, bearer)
    assert (status, err["message"]) == (400, "body: nested too deeply")
    status, err = await raw(http, "POST", f"{web.url}/api/v1/knowledge",
                            '{"question": "Is it \\u0000 free?", "answer": "Yes"}', bearer)
    assert (status, err["message"]) == (400, "question: NUL characters are not allowed")
    status, err = await raw(http, "POST", f"{web.url}/api/v1/knowledge",
                            '{"question": "Is it free?", "answer": "Yes", '
                            '"alternates": ["ok", "\\udfff"]}', bearer)
    assert (status, err["message"]) == (400, "alternates[1]: not valid Unicode "
                                             "(a lone surrogate)")
    status, err = await raw(http, "POST", f"{web.url}/api/v1/alerts/a1/answer",
                            '{"text": "x"}', {"Content-Type": "text/plain",
                                              "Authorization": f"Bearer {otto}"})
    assert status == 415
    admin = {**JSON, "Authorization": f"Bearer {ada}"}
    status, err = await raw(http, "POST", f"{web.url}/api/v1/rules",
                            '{"kind": "block", "pattern": "1234", '
                            '"priority": 9223372036854775808}', admin)
    assert (status, err["message"]) == (400, "priority: an integer from -2147483648 to "
                                             "2147483647")


async def test_knowledge_language_is_one_the_product_speaks(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    otto = await token(web, http, "otto")
    url = f"{web.url}/api/v1/knowledge"
    entry = {"question": "Do you sell gift cards?", "answer": "Yes, from 10 euros."}
    status, body = await call(http, "POST", url, otto, json={**entry, "language": "klingon"})
    assert (status, body["error"]["message"]) == (400, "language: one of en, ko")
    status, created = await call(http, "POST", url, otto, json={**entry, "language": "ko"})
    assert (status, created["language"]) == (201, "ko")
    status, body = await call(http, "PUT", f"{url}/{created['id']}", otto,
                              json={"language": "xx"})
    assert (status, body["error"]["message"]) == (400, "language: one of en, ko")
    assert (await call(http, "DELETE", f"{url}/{created['id']}", otto))[0] == 200


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/api/v1/calls", {"offset": "9223372036854775808"}, "offset: an integer from 0 to "
                                                         "2147483647"),
    ("/api/v1/knowledge", {"offset": "9223372036854775808"}, "offset: an integer from 0 to "
                                                             "2147483647"),
    ("/api/v1/audit", {"offset": "9223372036854775808"}, "offset: an integer from 0 to "
                                                         "2147483647"),
    ("/api/v1/calls", {"limit": "٣"}, "limit: an integer from 1 to 200"),
    ("/api/v1/calls", {"offset": "-1"}, "offset: an integer from 0 to 2147483647"),
    ("/api/v1/knowledge", {"query": "refund", "top_k": "²"}, "top_k: an integer from 1 "
                                                             "to 50"),
    ("/api/v1/metrics/performance", {"period": "9999999999h"}, "period: at most 3660d"),
    ("/api/v1/metrics/performance", {"period": "²h"}, "period: like 15m, 1h, 24h or 7d "
                                                      "(got '²h')"),
    ("/api/v1/metrics/timeline", {"utc_offset": "٣"}, "utc_offset: minutes ahead of UTC, "
                                                      "an integer (UTC+09:00: 540)"),
    ("/api/v1/calls", {"caller": "10\x0001"}, "caller: NUL characters are not allowed"),
])
async def test_integers_are_ascii_and_bounded(web: WebUnderTest, http: aiohttp.ClientSession,
                                              path: str, params: dict[str, str],
                                              message: str) -> None:
    status, body = await call(http, "GET", f"{web.url}{path}", await token(web, http, "ada"),
                              params=params)
    assert (status, body["error"]["message"]) == (400, message)


async def test_a_rule_id_is_ascii_digits(web: WebUnderTest,
                                         http: aiohttp.ClientSession) -> None:
    ada = await token(web, http, "ada")
    for rule_id in ("%C2%B3", "99999999999999999999", "0"):
        status, body = await call(http, "DELETE", f"{web.url}/api/v1/rules/{rule_id}", ada)
        assert (status, body["error"]["message"]) == (400, "id: a rule number, 1 to "
                                                           "2147483647")
    status, body = await call(http, "DELETE", f"{web.url}/api/v1/rules/12345", ada)
    assert (status, body["error"]["message"]) == (404, "id: no such rule")


async def test_a_request_aiohttp_cannot_parse_gets_json_with_the_security_headers(
        web: WebUnderTest) -> None:
    host, port = web.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /api/v1/calls HTTP/1.1\r\nHost: x\r\nX-Probe: <script>\x01evil\r\n\r\n")
    await writer.drain()
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert lines[0].split()[1] == "400"
    assert headers["content-type"].startswith("application/json")
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["server"] == "SmartPBX"
    assert json.loads(body) == {"error": {"code": "bad-request",
                                          "message": "request: not valid HTTP"}}
    assert b"evil" not in answer and b"<script>" not in answer


async def test_no_response_names_the_server_software(web: WebUnderTest,
                                                     http: aiohttp.ClientSession) -> None:
    for path in ("/healthz", "/api/v1/calls", "/nowhere", "/static/console.js", "/"):
        async with http.get(f"{web.url}{path}") as r:
            assert r.headers["Server"] == "SmartPBX", path
            assert r.headers["X-Content-Type-Options"] == "nosniff", path
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        async with http.ws_connect(f"{web.url}/ws/operator/otto?token=x"):
            pass
    assert err.value.headers is not None and err.value.headers["Server"] == "SmartPBX"


def _conforms(value: Any, schema: dict[str, Any]) -> bool:
    kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "array": list, "object": dict}
    if not isinstance(value, kinds[schema["type"]]):
        return False
    if schema["type"] == "object":
        props = schema.get("properties", {})
        return set(schema.get("required", ())) <= set(value) and all(
            _conforms(value[k], s) for k, s in props.items() if k in value)
    return schema["type"] != "array" or all(_conforms(v, schema["items"]) for v in value
                                            if schema["items"])


async def test_the_openapi_document_tells_the_success_answers(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    _, doc = await call(http, "GET", f"{web.url}/api/v1/openapi.json")
    ada = await token(web, http, "ada")

    def answer(path: str, method: str, status: str) -> dict[str, Any]:
        schema: dict[str, Any] = doc["paths"][path][method]["responses"][status]["content"][
            "application/json"]["schema"]
        return schema

    status, created = await call(http, "POST", f"{web.url}/api/v1/knowledge", ada, json={
        "question": "Do you sell gift cards?", "answer": "Yes.", "category": "gifts"})
    assert status == 201 and _conforms(created, answer("/api/v1/knowledge", "post", "201"))
    status, rule = await call(http, "POST", f"{web.url}/api/v1/rules", ada,
                              json={"kind": "block", "pattern": "5550000"})
    assert status == 201 and _conforms(rule, answer("/api/v1/rules", "post", "201"))
    assert "200" not in doc["paths"]["/api/v1/rules"]["post"]["responses"]
    async with http.post(f"{web.url}/api/v1/auth/login",
                         json={"email": "vic@example.com", "password": PASSWORD}) as r:
        assert _conforms(await r.json(), answer("/api/v1/auth/login", "post", "200"))
    for path in ("/api/v1/calls", "/api/v1/knowledge", "/api/v1/alerts", "/api/v1/operators",
                 "/api/v1/rules", "/api/v1/audit", "/healthz", f"/api/v1/knowledge/"
                                                               f"{created['id']}"):
        status, body = await call(http, "GET", f"{web.url}{path}", ada)
        documented = path if "knowledge/" not in path else "/api/v1/knowledge/{id}"
        schema = answer(documented, "get", "200")
        assert status == 200 and schema.get("properties") and _conforms(body, schema), path
    assert "text/plain" in doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    status, body = await call(http, "POST", f"{web.url}/api/v1/knowledge", ada, json={
        "question": "Do you sell gift cards?", "answer": "Yes.", "category": "g" * 65})
    assert (status, body["error"]["message"]) == (400, "category: at most 64 characters")


async def test_the_openapi_document_tells_the_integer_ranges_the_handlers_check(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    """Found by schemathesis: the document said every parameter is any string, so each
    out-of-range page was a "valid" request refused."""
    _, doc = await call(http, "GET", f"{web.url}/api/v1/openapi.json")
    ada = await token(web, http, "ada")
    schemas = {(path, p["name"]): p["schema"] for path, ops in doc["paths"].items()
               for op in ops.values() for p in op.get("parameters", [])}
    limit = schemas["/api/v1/calls", "limit"]
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 200)
    for value, status in ((limit["maximum"], 200), (limit["maximum"] + 1, 400),
                          (limit["minimum"] - 1, 400)):
        got, _ = await call(http, "GET", f"{web.url}/api/v1/calls?limit={value}", ada)
        assert got == status, value
    top_k = schemas["/api/v1/knowledge", "top_k"]
    got, _ = await call(http, "GET", f"{web.url}/api/v1/knowledge?query=refund&top_k="
                        f"{top_k['maximum'] + 1}", ada)
    assert got == 400
    offset = schemas["/api/v1/metrics/timeline", "utc_offset"]
    got, _ = await call(http, "GET", f"{web.url}/api/v1/metrics/timeline?utc_offset="
                        f"{offset['maximum']}", ada)
    assert got == 200
    assert schemas["/api/v1/rules/{id}", "id"]["pattern"] == "^[0-9]{1,10}$"


async def test_the_documented_required_fields_are_the_ones_the_handlers_require(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    """Found by schemathesis: no body schema named its required fields, so an empty object
    was a "valid" request refused. Each body route's row tells them (and the document);
    an empty body is refused naming the first, or not for a missing field at all."""
    _, doc = await call(http, "GET", f"{web.url}/api/v1/openapi.json")
    ada = await token(web, http, "ada")
    _, entry = await call(http, "GET", f"{web.url}/api/v1/knowledge?limit=1", ada)
    ids = {"id": entry["data"][0]["id"], "alert_id": "no-such-alert"}
    for route in [r for r in ROUTES if r.body]:
        schema = doc["paths"][route.path][route.method.lower()]["requestBody"]["content"][
            "application/json"]["schema"]
        assert schema.get("required", []) == list(route.required), route.path
        status, body = await call(http, route.method, web.url + route.path.format(**ids), ada,
                                  json={})
        message = body["error"]["message"] if status >= 400 else ""
        if route.required:
            assert (status, message) == (400, f"{route.required[0]}: required"), route.path
        else:
            assert not message.endswith(": required"), (route.path, message)


async def test_the_documented_field_limits_are_the_handlers(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    """Found by schemathesis: the document let a title run to any length (the store took
    120), a rule be any kind, an answer be blank."""
    _, doc = await call(http, "GET", f"{web.url}/api/v1/openapi.json")
    ada = await token(web, http, "ada")
    knowledge = doc["paths"]["/api/v1/knowledge"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]
    most = knowledge["title"]["maxLength"]
    entry = {"question": "Do you sell gift cards?", "answer": "Yes.", "title": "t" * most}
    assert (await call(http, "POST", f"{web.url}/api/v1/knowledge", ada, json=entry))[0] == 201
    status, body = await call(http, "POST", f"{web.url}/api/v1/knowledge", ada,
                              json={**entry, "title": "t" * (most + 1)})
    assert (status, body["error"]["message"]) == (400, f"title: at most {most} characters")
    assert knowledge["language"]["enum"] == ["en", "ko"]
    rule = doc["paths"]["/api/v1/rules"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]
    status, _ = await call(http, "POST", f"{web.url}/api/v1/rules", ada,
                           json={"kind": "forward", "pattern": "1"})
    assert status == 400 and "forward" not in rule["kind"]["enum"]

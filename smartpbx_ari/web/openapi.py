"""The OpenAPI 3 document, made from the route table (it cannot drift from the routes):
paths, parameters (the integers' ranges as the handlers check them), bodies, the success
status and answer, errors."""

from __future__ import annotations

import re
from typing import Any

from smartpbx_ari.web.context import INT_MAX, INT_MIN
from smartpbx_ari.web.route import MAX_OFFSET, MAX_PAGE, MAX_TOP_K
from smartpbx_ari.web.routes_admin import MAX_OFFSET_MIN

TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
PARAMETERS: dict[str, dict[str, Any]] = {  # by name; the rest are strings
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
    "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K},
    "utc_offset": {"type": "integer", "minimum": -MAX_OFFSET_MIN, "maximum": MAX_OFFSET_MIN},
    # a span: a count and m, h or d (the handlers take up to 3660d; the document tells a
    # safe part of that, as period and bucket together may make too many buckets)
    "period": {"type": "string", "pattern": "^[1-9][0-9]{0,2}[mhd]$"},
    "bucket": {"type": "string", "pattern": "^[1-9][0-9]{0,2}[mhd]$"},
    "from": {"type": "string", "format": "date-time"},
    "to": {"type": "string", "format": "date-time"},
}
ROUTE_PARAMETERS: dict[tuple[str, str], dict[str, Any]] = {
    ("/api/v1/knowledge", "status"): {"type": "string", "enum": ["approved", "pending"]},
}
RULE_ID = {"type": "string", "pattern": f"^[0-9]{{1,{len(str(INT_MAX))}}}$"}


def _schema(kind: type) -> dict[str, Any]:
    if kind is list:  # the API's lists are lists of strings
        return {"type": "array", "items": {"type": "string"}}
    if kind is int:  # what every database keeps
        return {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX}
    return {"type": TYPES[kind]}


def _answer(route: Any) -> dict[str, Any]:
    """The success answer's schema: the fields the route returns (a list there: of anything
    but in ``body``'s fields, where it is a list of strings)."""
    if route.media != "application/json":
        return {"type": "string", "format": "binary"} if route.media.startswith("audio/") \
            else {"type": "string"}
    props = {k: _schema(t) if t is not list or k in route.body
             else {"type": "array", "items": {}} for k, t in route.returns.items()}
    return {"type": "object", "properties": props, "required": sorted(props)} if props \
        else {"type": "object"}


ERROR = {"$ref": "#/components/schemas/Error"}
MODEL_ROUTES = {"/api/v1/agent/query"}  # a turn of the agent: its search has a deadline


def document(routes: list[Any], fields: dict[str, dict[str, Any]] | None = None
             ) -> dict[str, Any]:
    """The document of ``routes``; ``fields``: the schemas of body fields (by name) that
    say more than their type (lengths, choices)."""
    fields = fields or {}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "responses": {
                str(route.status): {"description": "Created" if route.status == 201 else "OK",
                                    "content": {route.media: {"schema": _answer(route)}}},
                "4XX": {"description": "Error",
                        "content": {"application/json": {"schema": ERROR}}}},
        }
        if route.path in MODEL_ROUTES:
            op["responses"]["503"] = {"description": "A model failed or missed its deadline",
                                      "content": {"application/json": {"schema": ERROR}}}
        params = [{"name": n, "in": "path", "required": True,
                   "schema": RULE_ID if route.path.startswith("/api/v1/rules/")
                   else {"type": "string"}} for n in re.findall(r"{(\w+)}", route.path)]
        params += [{"name": n, "in": "query", "required": False,
                    "schema": ROUTE_PARAMETERS.get((route.path, n))
                    or PARAMETERS.get(n, {"type": "string"})} for n in route.query]
        if params:
            op["parameters"] = params
        if route.body:
            body: dict[str, Any] = {"type": "object", "additionalProperties": False,
                                    "properties": {k: fields.get(k) or _schema(t)
                                                   for k, t in route.body.items()}}
            if route.required:
                body["required"] = list(route.required)
            op["requestBody"] = {"required": True,
                                 "content": {"application/json": {"schema": body}}}
        if route.right:
            op["security"] = [{"bearer": []}]
            op["x-required-right"] = route.right
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.0.3",
        "info": {"title": "SmartPBX AI", "version": "1"},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": {"Error": {
                "type": "object", "required": ["error"], "additionalProperties": False,
                "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"},
                                   "message": {"type": "string"}}}}}},
        },
    }

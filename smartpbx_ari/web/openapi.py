"""The OpenAPI 3 document, made from the route table (it cannot drift from the routes):
paths, parameters (the integers' ranges as the handlers check them), bodies, the success
status and answer, errors."""

from __future__ import annotations

import re
from typing import Any

from smartpbx_ari.web.context import INT_MAX
from smartpbx_ari.web.route import MAX_OFFSET, MAX_PAGE, MAX_TOP_K
from smartpbx_ari.web.routes_admin import MAX_OFFSET_MIN

TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}
PARAMETERS: dict[str, dict[str, Any]] = {  # by name; the rest are strings
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
    "top_k": {"type": "integer", "minimum": 1, "maximum": MAX_TOP_K},
    "utc_offset": {"type": "integer", "minimum": -MAX_OFFSET_MIN, "maximum": MAX_OFFSET_MIN},
}
RULE_ID = {"type": "string", "pattern": f"^[0-9]{{1,{len(str(INT_MAX))}}}$"}


def _schema(kind: type) -> dict[str, Any]:
    if kind is list:  # the API's lists are lists of strings
        return {"type": "array", "items": {"type": "string"}}
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


def document(routes: list[Any]) -> dict[str, Any]:
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
        params = [{"name": n, "in": "path", "required": True,
                   "schema": RULE_ID if route.path.startswith("/api/v1/rules/")
                   else {"type": "string"}} for n in re.findall(r"{(\w+)}", route.path)]
        params += [{"name": n, "in": "query", "required": False,
                    "schema": PARAMETERS.get(n, {"type": "string"})} for n in route.query]
        if params:
            op["parameters"] = params
        if route.body:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": {"type": "object", "additionalProperties": False, "properties": {
                    k: _schema(t) for k, t in route.body.items()}}}}}
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

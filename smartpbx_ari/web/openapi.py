"""The OpenAPI 3 document, made from the route table (it cannot drift from the routes)."""

from __future__ import annotations

import re
from typing import Any

TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _schema(kind: type) -> dict[str, Any]:
    if kind is list:  # the API's lists are lists of strings
        return {"type": "array", "items": {"type": "string"}}
    return {"type": TYPES[kind]}
ERROR = {"$ref": "#/components/schemas/Error"}


def document(routes: list[Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "operationId": route.handler.__name__,
            "responses": {"200": {"description": "OK"},
                          "4XX": {"description": "Error",
                                  "content": {"application/json": {"schema": ERROR}}}},
        }
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"{(\w+)}", route.path)]
        params += [{"name": n, "in": "query", "required": False,
                    "schema": {"type": "string"}} for n in route.query]
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
            "schemas": {"Error": {"type": "object", "properties": {"error": {
                "type": "object", "properties": {"code": {"type": "string"},
                                                 "message": {"type": "string"}}}}}},
        },
    }

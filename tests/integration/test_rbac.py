"""The RBAC matrix over a real loopback port: every route of the route table (web/api.py
ROUTES, iterated, so a route added there is in the matrix by itself) x every role (admin,
operator, viewer, a signed token naming a role that does not exist, and no token) gets
exactly the documented access: 401 without a valid token, 403 for a role without the
route's right, neither of them otherwise, and never a 5xx."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import aiohttp
import jwt
import pytest

from smartpbx_ari.ai.rag import RAGEngine
from smartpbx_ari.config import Settings
from smartpbx_ari.web.api import ROUTES
from smartpbx_ari.web.app import create_app
from smartpbx_ari.web.auth import RIGHTS
from smartpbx_ari.web.route import Route
from tests.fixtures.web_app import WebUnderTest, make_engine, running_web
from tests.integration.test_api import token

pytestmark = [pytest.mark.integration]

# README, "Roles": viewer reads; operator also acts on alerts and edits knowledge; admin
# also edits routing rules and reads the audit log.
DOCUMENTED = {"viewer": {"read"},
              "operator": {"read", "operate", "edit_knowledge"},
              "admin": {"read", "operate", "edit_knowledge", "admin"}}
ADMIN_PATHS = {"/api/v1/rules", "/api/v1/rules/{id}", "/api/v1/audit"}
# README: "/metrics (Prometheus) and /healthz need no token"; logging in and the OpenAPI
# document neither
PUBLIC = {("POST", "/api/v1/auth/login"), ("GET", "/api/v1/openapi.json"),
          ("GET", "/healthz"), ("GET", "/metrics")}
# the app's routes that are not API routes (their own tests: the socket, the console)
OUTSIDE_THE_TABLE = {"/ws/operator/{operator_id}", "/", "/static"}
USERS = {"admin": "ada", "operator": "otto", "viewer": "vic"}
ROLES = [*USERS, "supervisor", None]  # supervisor: no such role; None: no token


@pytest.fixture(scope="module")
def rbac_engine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RAGEngine]:
    return make_engine(tmp_path_factory.mktemp("rbac"))


@pytest.fixture
async def web(rbac_engine: tuple[Settings, RAGEngine]) -> AsyncIterator[WebUnderTest]:
    async with running_web(*rbac_engine) as under_test:
        yield under_test


def expected(route: Route, role: str | None) -> str:
    if not route.right:
        return "allowed"
    if role not in DOCUMENTED:
        return "401"
    return "allowed" if route.right in DOCUMENTED[role] else "403"


def outcome(status: int) -> str:
    if status in (401, 403):
        return str(status)
    return "allowed" if status < 500 else f"{status} (a server error)"


def test_the_rights_and_the_public_and_admin_routes_are_the_documented_ones() -> None:
    assert RIGHTS == DOCUMENTED
    assert {(r.method, r.path) for r in ROUTES if not r.right} == PUBLIC
    assert {r.path for r in ROUTES if r.right == "admin"} == ADMIN_PATHS
    assert {r.right for r in ROUTES} <= {"", *DOCUMENTED["admin"]}


def test_the_route_table_is_every_route_of_the_app(web: WebUnderTest) -> None:
    app = create_app(web.context)
    served = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert served - {r.path for r in ROUTES} == OUTSIDE_THE_TABLE


async def test_every_route_by_every_role_gets_the_documented_access(
        web: WebUnderTest, http: aiohttp.ClientSession) -> None:
    tokens: dict[str | None, str | None] = {
        role: await token(web, http, name) for role, name in USERS.items()}
    now = int(time.time())
    tokens["supervisor"] = jwt.encode({"sub": "ada", "role": "supervisor", "exp": now + 60},
                                      web.context.tokens._secret, algorithm="HS256")
    tokens[None] = None
    wrong = []
    for route in ROUTES:
        # a placeholder that names nothing: the allowed get 404 or 400, not a change
        path = re.sub(r"\{\w+\}", "rbac-none", route.path)
        body = {"json": {}} if route.body else {}
        for role in ROLES:
            tok = tokens[role]
            headers = {"Authorization": f"Bearer {tok}"} if tok else {}
            async with http.request(route.method, web.url + path, headers=headers,
                                    **body) as response:
                got = outcome(response.status)
            if got != expected(route, role):
                wrong.append(f"{route.method} {route.path} as {role}: {response.status}, "
                             f"documented {expected(route, role)}")
    assert wrong == []
    assert len(ROUTES) * len(ROLES) >= 30 * 5  # the table was walked, not an empty one

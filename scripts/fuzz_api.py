#!/usr/bin/env python3
"""Fuzz the operators' API with schemathesis, as an admin, an operator and a viewer.

Starts `smartpbx serve --web-only` on a free loopback port with a temporary data dir (demo
knowledge base, one user per role), logs each in, then runs the schemathesis CLI (4.x)
against /api/v1/openapi.json with that role's bearer token: every phase (examples,
coverage, fuzzing, stateful), positive and negative data. The checks: no 5xx, and every
answer as the document says (status codes, content types, schemas; a 4xx is the
``{"error": {"code", "message"}}`` shape). Prints the cases run and the failures per role;
exits 1 on any failure.

    .venv/bin/python scripts/fuzz_api.py [--max-examples 100] [--seed N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from smartpbx_ari.cli.kb import ensure_demo_knowledge
from smartpbx_ari.config import load_settings
from smartpbx_ari.store.migrate import open_database
from smartpbx_ari.store.users import add_user

BIN = Path(sys.executable).parent
USERS = {"admin": "ada", "operator": "otto", "viewer": "vic"}
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance")


@dataclass
class RoleRun:
    role: str
    cases: int = 0  # requests schemathesis made
    statuses: dict[int, int] = field(default_factory=dict)  # answers by status code
    operations: int = 0
    failures: list[str] = field(default_factory=list)  # one line per distinct failure
    exit_code: int = 0
    seconds: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(data_dir: Path, password: str) -> None:
    """A data dir with the demo knowledge base and one user per role."""
    settings = load_settings(environ={"SMARTPBX_DATA_DIR": str(data_dir)})
    ensure_demo_knowledge(settings)
    db = open_database(settings)
    for role, name in USERS.items():
        add_user(db, name, password, role, f"{name}@example.com")
    db.engine.dispose()


@contextmanager
def running_web(data_dir: Path) -> Iterator[str]:
    """`smartpbx serve --web-only` on a free port; its URL. Its log: data_dir/web.log."""
    port = free_port()
    env = {**os.environ, "SMARTPBX_DATA_DIR": str(data_dir), "SMARTPBX_WEB__PORT": str(port),
           "SMARTPBX_WEB__LOGIN_ATTEMPTS_PER_MINUTE": "1000000",
           "SMARTPBX_WEB__LOGIN_FAILURES_PER_ACCOUNT": "1000000",
           "SMARTPBX_WEB__TOKEN_TTL_S": "86400"}
    url = f"http://127.0.0.1:{port}"
    with (data_dir / "web.log").open("wb") as log:
        server = subprocess.Popen([str(BIN / "smartpbx"), "serve", "--web-only"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=1).close()  # nosec B310
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the web app did not start: "
                                           + (data_dir / "web.log").read_text()[-2000:]
                                           ) from None
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(30)


def login(url: str, name: str, password: str) -> str:
    body = json.dumps({"email": f"{name}@example.com", "password": password}).encode()
    request = urllib.request.Request(f"{url}/api/v1/auth/login", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as answer:  # nosec B310
        return str(json.load(answer)["access_token"])


def fuzz_role(url: str, role: str, token: str, report_dir: Path, max_examples: int,
              seed: int, max_time_s: float | None = None, checks: str = CHECKS) -> RoleRun:
    """One schemathesis run with ``role``'s token."""
    report = report_dir / f"{role}.ndjson"
    command = [str(BIN / "schemathesis"), "run", f"{url}/api/v1/openapi.json",
               "--header", f"Authorization: Bearer {token}", "--checks", checks,
               "--max-examples", str(max_examples), "--seed", str(seed), "--workers", "1",
               "--request-timeout", "30", "--report", "ndjson",
               "--report-ndjson-path", str(report), "--no-color"]
    if max_time_s is not None:
        command += ["--max-time", str(int(max_time_s))]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, check=False,  # nosec B603
                          env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
                          cwd=report_dir)  # its cache (.schemathesis/) goes there too
    run = RoleRun(role, exit_code=done.returncode, seconds=round(time.monotonic() - started, 1))
    tally(run, report)
    if done.returncode and not run.failures:
        run.failures.append(f"schemathesis exited {done.returncode}: "
                            + (done.stdout + done.stderr)[-3000:])
    return run


def tally(run: RoleRun, report: Path) -> None:
    """Cases and distinct failures from schemathesis' NDJSON event stream."""
    seen: set[str] = set()
    operations: set[str] = set()
    for line in report.read_text().splitlines():
        event = json.loads(line)
        for name, body in event.items():
            if name == "ScenarioFinished":
                _scenario(body, run, seen, operations)
            elif name == "NonFatalError":
                text = f"error: {body.get('label')}: {str(body.get('info', ''))[:300]}"
                if text not in seen:
                    seen.add(text)
                    run.failures.append(text)
    run.operations = len(operations)


def _scenario(body: dict[str, Any], run: RoleRun, seen: set[str], operations: set[str]
              ) -> None:
    recorder = body.get("recorder", {})
    label = body.get("label") or recorder.get("label", "?")
    operations.add(str(label))
    for interaction in recorder.get("interactions", {}).values():
        run.cases += 1
        status = int((interaction.get("response") or {}).get("status_code") or 0)
        run.statuses[status] = run.statuses.get(status, 0) + 1
    for case_id, checks in recorder.get("checks", {}).items():
        for check in checks:
            if check.get("status") != "failure":
                continue
            failure = check.get("failure_info") or {}
            detail = failure.get("failure", {}) if isinstance(failure, dict) else {}
            title = detail.get("title") or check.get("name")
            text = f"{label}: {check.get('name')}: {title}"
            if text not in seen:
                seen.add(text)
                interaction = recorder.get("interactions", {}).get(case_id, {})
                response = (interaction.get("response") or {})
                run.failures.append(f"{text} (status {response.get('status_code')}; "
                                    f"{detail.get('code', '')})")


def fuzz(max_examples: int, seed: int, max_time_s: float | None = None,
         checks: str = CHECKS) -> list[RoleRun]:
    """The whole run: a fresh web app, each role in turn."""
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as tmp:
        data_dir = Path(tmp)
        prepare(data_dir, password)
        with running_web(data_dir) as url:
            return [fuzz_role(url, role, login(url, name, password), data_dir, max_examples,
                              seed, max_time_s, checks) for role, name in USERS.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=secrets.randbelow(2**31))
    parser.add_argument("--max-time-s", type=float, default=None,
                        help="time budget per role (fuzzing repeats until it is spent)")
    parser.add_argument("--checks", default=CHECKS,
                        help=f"schemathesis' checks (default {CHECKS}; 'all' adds the "
                        "advisory ones, e.g. positive_data_acceptance)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    runs = fuzz(args.max_examples, args.seed, args.max_time_s, args.checks)
    if args.json:
        print(json.dumps({"seed": args.seed, "runs": [asdict(r) for r in runs]}))
    else:
        for run in runs:
            print(f"{run.role:9} {run.cases:7} cases over {run.operations} operations in "
                  f"{run.seconds} s; failures: {len(run.failures)}; statuses "
                  f"{dict(sorted(run.statuses.items()))}")
            for failure in run.failures:
                print(f"    {failure}")
        print(f"seed {args.seed}: {sum(r.cases for r in runs)} cases, "
              f"{sum(len(r.failures) for r in runs)} failures")
    return 1 if any(r.failures for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Load on the operators' API: the seed's locust task mix and peak shape.

Starts `smartpbx serve --web-only` on a free loopback port with a temporary data dir
(demo knowledge base, 100 load users), runs locust headless (tests/load/locustfile.py,
10 -> 50 -> 100 -> 50 -> 10 users, --stage-s seconds a stage), then prints per route the
request count, failures, p50/p95/max (ms). Target: 100 users, p95 <= 100 ms for reads,
0 failures (a failure: exit 1). The login rate limit is raised for the run: every
simulated user comes from 127.0.0.1.

    .venv/bin/python scripts/bench_web.py [--stage-s 60] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READS = ("/api/v1/calls", "/api/v1/knowledge/search", "/api/v1/metrics/performance")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(data_dir: Path, password: str) -> None:
    from smartpbx_ari.cli.kb import ensure_demo_knowledge
    from smartpbx_ari.config import load_settings
    from smartpbx_ari.store.migrate import open_database
    from smartpbx_ari.store.users import add_user

    settings = load_settings(environ={"SMARTPBX_DATA_DIR": str(data_dir)})
    ensure_demo_knowledge(settings)
    db = open_database(settings)
    for n in range(1, 101):
        add_user(db, f"load{n}", password, "operator", f"load{n}@example.com")
    db.engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage-s", type=float, default=60.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    password = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        prepare(data_dir, password)
        port = free_port()
        env = {**os.environ, "SMARTPBX_DATA_DIR": str(data_dir),
               "SMARTPBX_WEB__PORT": str(port),
               "SMARTPBX_WEB__LOGIN_ATTEMPTS_PER_MINUTE": "100000",
               "SMARTPBX_WEB__LOGIN_FAILURES_PER_ACCOUNT": "100000"}
        log = (data_dir / "web.log").open("wb")
        server = subprocess.Popen([str(bin_dir / "smartpbx"), "serve", "--web-only"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=1).close()
                    break
                except OSError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        print((data_dir / "web.log").read_text()[-2000:], file=sys.stderr)
                        return 1
                    time.sleep(0.5)
            prefix = data_dir / "locust"
            subprocess.run([str(bin_dir / "locust"), "-f", str(ROOT / "tests/load/locustfile.py"),
                            "--host", url, "--headless", "--csv", str(prefix),
                            "--only-summary"],
                           env={**env, "SMARTPBX_LOAD_PASSWORD": password,
                                "SMARTPBX_LOAD_STAGE_S": str(args.stage_s)},
                           check=False, stdout=subprocess.DEVNULL)
            rows = list(csv.DictReader((data_dir / "locust_stats.csv").open()))
        finally:
            server.terminate()
            server.wait(30)
            log.close()
    result = {r["Name"]: {"requests": int(r["Request Count"]),
                          "failures": int(r["Failure Count"]),
                          "p50_ms": float(r["50%"]), "p95_ms": float(r["95%"]),
                          "max_ms": round(float(r["Max Response Time"]), 1)}
              for r in rows if r["Name"] != "Aggregated"}
    reads = [result[name] for name in READS if name in result]
    summary = {"routes": result, "reads_p95_max_ms": max(r["p95_ms"] for r in reads),
               "failures": sum(r["failures"] for r in result.values())}
    if args.json:
        print(json.dumps(summary))
    else:
        for name, figures in result.items():
            print(f"{name:36} {figures}")
        print(f"reads: worst p95 {summary['reads_p95_max_ms']} ms; "
              f"failures {summary['failures']}")
    return 0 if summary["failures"] == 0 else 1  # CI's load-test job fails on one


if __name__ == "__main__":
    sys.exit(main())

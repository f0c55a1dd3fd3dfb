"""Load on the operators' API with the seed's task mix and peak shape (10 -> 50 -> 100 ->
50 -> 10 users). Run by scripts/bench_web.py (headless), which creates the users
load1..load100 with the password in $SMARTPBX_LOAD_PASSWORD:

    locust -f tests/load/locustfile.py --host http://127.0.0.1:8080 --headless
"""

from __future__ import annotations

import os
import random
from typing import ClassVar

from locust import HttpUser, LoadTestShape, between, events, task

PASSWORD = os.environ.get("SMARTPBX_LOAD_PASSWORD", "")
USERS = int(os.environ.get("SMARTPBX_LOAD_USERS", "100"))


class SmartPBXUser(HttpUser):
    wait_time = between(1, 5)

    def on_start(self) -> None:
        response = self.client.post("/api/v1/auth/login", json={
            "email": f"load{random.randint(1, USERS)}@example.com", "password": PASSWORD},
            name="/api/v1/auth/login")
        self.token = response.json()["access_token"] if response.status_code == 200 else None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @task(3)
    def list_calls(self) -> None:
        if self.token:
            self.client.get("/api/v1/calls", headers=self._headers(), params={"limit": 20},
                            name="/api/v1/calls")

    @task(2)
    def search_knowledge(self) -> None:
        if self.token:
            query = random.choice(["배송", "환불", "교환", "상품", "결제"])
            self.client.get("/api/v1/knowledge", headers=self._headers(),
                            params={"query": query, "top_k": 5},
                            name="/api/v1/knowledge/search")

    @task(1)
    def agent_query(self) -> None:
        if self.token:
            self.client.post("/api/v1/agent/query", headers=self._headers(), json={
                "query": random.choice(["배송 조회하고 싶어요", "환불 가능한가요?",
                                        "상품 재고 있나요?"]),
                "session_id": f"session_{random.randint(1, 1000)}"},
                name="/api/v1/agent/query")

    @task(1)
    def get_metrics(self) -> None:
        if self.token:
            self.client.get("/api/v1/metrics/performance", headers=self._headers(),
                            params={"period": "1h"}, name="/api/v1/metrics/performance")


class PeakLoadShape(LoadTestShape):
    """1 min 10 users, then 50, 100 (peak), 50, 10; SMARTPBX_LOAD_STAGE_S scales a stage."""

    stage_s = float(os.environ.get("SMARTPBX_LOAD_STAGE_S", "60"))
    stages: ClassVar[list[tuple[int, float]]] = [(10, 1), (50, 5), (100, 10), (50, 5), (10, 2)]

    def tick(self) -> tuple[int, float] | None:
        stage = int(self.get_run_time() // self.stage_s)
        return self.stages[stage] if stage < len(self.stages) else None


@events.test_stop.add_listener
def on_test_stop(environment, **kwargs) -> None:  # type: ignore[no-untyped-def]
    total = environment.stats.total
    print(f"Total requests: {total.num_requests}, failures: {total.num_failures}, "
          f"average {total.avg_response_time:.1f} ms")

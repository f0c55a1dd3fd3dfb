"""schemathesis (4.x) against the running web app (`smartpbx serve --web-only`) with an
admin's, an operator's and a viewer's token, through scripts/fuzz_api.py: no 5xx and no
dropped connection; every answer as /api/v1/openapi.json says (status codes, content
types, headers, schemas: a 4xx is ``{"error": {"code", "message"}}``). A capped number of
examples per operation bounds it (2-3 minutes on 2 cores); the script runs longer."""

from __future__ import annotations

import pytest

from tests.fixtures.scripts import load_script

pytestmark = [pytest.mark.integration, pytest.mark.slow]
fuzz_api = load_script("fuzz_api")
EXAMPLES = 10  # per operation and role: ~2,000 requests in all, near 2 minutes


def test_schemathesis_finds_no_5xx_and_no_answer_the_document_does_not_tell() -> None:
    runs = fuzz_api.fuzz(EXAMPLES, seed=20261128)
    assert [run.role for run in runs] == ["admin", "operator", "viewer"]
    for run in runs:
        assert run.operations >= 30, run  # every route of the table was reached
        assert run.cases >= 400, run
        assert run.failures == [], run
        assert all(200 <= status < 500 for status in run.statuses), run.statuses
    # each role met its own rights: the viewer's writes were refused, the admin's not
    viewer, admin = runs[2].statuses, runs[0].statuses
    assert viewer.get(403, 0) > admin.get(403, 0)

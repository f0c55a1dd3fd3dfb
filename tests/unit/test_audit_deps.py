"""scripts/audit_deps.py: the canary decides whether a service answers; a vulnerability
fails the audit unless excepted with a reason; what could not be audited fails it too.
pip-audit itself is faked at the seam (the command it runs); its JSON is its own shape."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.fixtures.scripts import load_script

pytestmark = pytest.mark.unit

audit_deps = load_script("audit_deps")
VULN = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-1"], "fix_versions": ["3.0"],
        "description": "bad"}
CANARY_VULN = {"id": "PYSEC-2019-217", "aliases": ["CVE-2019-10906"],
               "fix_versions": ["2.10.1"], "description": "sandbox escape"}


class FakePipAudit:
    """Answers like pip-audit -f json -o FILE for the services in ``answering``."""

    def __init__(self, answering: set[str], vulns: dict[str, list[dict[str, object]]],
                 skipped: Sequence[str] = ()) -> None:
        self.answering, self.vulns, self.skipped = answering, vulns, set(skipped)
        self.audited: list[tuple[str, list[str]]] = []

    def __call__(self, cmd: Sequence[str]) -> tuple[int, str, str]:
        service = cmd[cmd.index("-s") + 1]
        requirements = Path(cmd[cmd.index("-r") + 1]).read_text().split()
        self.audited.append((service, requirements))
        if service not in self.answering:
            return 1, "", "ConnectionError: Failed to resolve"
        deps: list[dict[str, object]] = []
        for line in requirements:
            name, _, version = line.partition("==")
            if name in self.skipped:
                deps.append({"name": name, "skip_reason": f"not found: {name} ({version})"})
            else:
                found = [CANARY_VULN] if line == audit_deps.CANARY else self.vulns.get(name, [])
                deps.append({"name": name, "version": version, "vulns": found})
        Path(cmd[cmd.index("-o") + 1]).write_text(json.dumps({"dependencies": deps,
                                                              "fixes": []}))
        return (1 if any(d.get("vulns") for d in deps) else 0), "", ""


FREEZE = "aiohttp==3.14.5\ntorch==2.13.0+cpu\nnumpy==2.3.0\n"


def test_no_service_answering_is_a_loud_skip_or_a_failure_where_required(
        capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakePipAudit(answering=set(), vulns={})
    assert audit_deps.audit(fake, FREEZE, {}, required=False) == 0
    assert "pip-audit: SKIPPED: no vulnerability service answers" in capsys.readouterr().out
    assert audit_deps.audit(fake, FREEZE, {}, required=True) == 1
    assert "pip-audit: FAILED: no vulnerability service answers" in capsys.readouterr().out
    assert [s for s, _ in fake.audited] == ["pypi", "osv"] * 2  # only the canary was tried


def test_a_vulnerable_pin_fails_naming_it_and_the_fix(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    fake = FakePipAudit(answering={"osv"}, vulns={"aiohttp": [VULN]})
    assert audit_deps.audit(fake, FREEZE, {}, required=False) == 1
    out = capsys.readouterr().out
    assert "VULNERABLE: aiohttp 3.14.5: PYSEC-2099-1 (CVE-2099-1; fix: 3.0)" in out
    assert "pip-audit (osv): 3 distributions, 1 vulnerable, 0 excepted" in out
    assert fake.audited[-1] == ("osv", ["aiohttp==3.14.5", "torch==2.13.0", "numpy==2.3.0"])


def test_an_exception_by_alias_passes_with_its_reason(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    fake = FakePipAudit(answering={"pypi", "osv"}, vulns={"aiohttp": [VULN]})
    ignores = {"CVE-2099-1": "we never parse multipart bodies"}
    assert audit_deps.audit(fake, FREEZE, ignores, required=True) == 0
    out = capsys.readouterr().out
    assert ("excepted (pip-audit-ignore.txt): aiohttp 3.14.5: PYSEC-2099-1: "
            "we never parse multipart bodies") in out
    assert fake.audited[-1][0] == "pypi"


def test_a_distribution_not_audited_fails(capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakePipAudit(answering={"pypi"}, vulns={}, skipped=["numpy"])
    assert audit_deps.audit(fake, FREEZE + "local-thing @ file:///src\n", {}, False) == 1
    out = capsys.readouterr().out
    assert "NOT AUDITED: not found: numpy (2.3.0)" in out
    assert "NOT AUDITED: local-thing @ file:///src: not a release of the index" in out


def test_the_ignore_file_needs_a_reason_per_id(tmp_path: Path) -> None:
    path = tmp_path / "pip-audit-ignore.txt"
    path.write_text("# comment\n\nGHSA-aaaa-bbbb-cccc  only the CLI is affected  # note\n")
    assert audit_deps.read_ignores(path) == {"GHSA-aaaa-bbbb-cccc": "only the CLI is affected"}
    path.write_text("# comment\nCVE-2099-1\n")
    with pytest.raises(audit_deps.IgnoreFileError, match=r"^pip-audit-ignore.txt:2: "
                       r"CVE-2099-1: a reason is required$"):
        audit_deps.read_ignores(path)
    path.write_text("CVE-2099-1 a\nCVE-2099-1 b\n")
    with pytest.raises(audit_deps.IgnoreFileError, match="2: CVE-2099-1: listed twice"):
        audit_deps.read_ignores(path)


def test_the_shipped_ignore_file_reads() -> None:
    for vuln_id, reason in audit_deps.read_ignores(audit_deps.IGNORE_FILE).items():
        assert vuln_id and len(reason.split()) >= 3

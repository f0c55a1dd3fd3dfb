#!/usr/bin/env python3
"""pip-audit over this environment: every installed distribution, as pinned, checked against
a vulnerability service; the only exceptions are the ids in pip-audit-ignore.txt, each with
its reason.

A known-vulnerable canary (jinja2 2.10) is audited first: a service that does not report it
is not answering. Then this says SKIPPED and exits 0, unless SMARTPBX_AUDIT=required (the
GitHub workflow, which reaches the services), where it exits 1. It exits 1 on a known
vulnerability not excepted, or on a distribution that could not be audited.

    .venv/bin/python scripts/audit_deps.py [--ignore-file pip-audit-ignore.txt]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IGNORE_FILE = ROOT / "pip-audit-ignore.txt"
SERVICES = ("pypi", "osv")  # pip-audit's default first
CANARY = "jinja2==2.10"  # PYSEC-2019-217 (CVE-2019-10906) and more: every service knows it
PIP_AUDIT = [sys.executable, "-m", "pip_audit"]
# runs a command; its exit code, stdout and stderr
Run = Callable[[Sequence[str]], tuple[int, str, str]]


class IgnoreFileError(ValueError):
    pass


@dataclass
class Report:
    vulnerable: list[str] = field(default_factory=list)  # "name version: ID (fix: ...)"
    excepted: list[str] = field(default_factory=list)  # "name version: ID: reason"
    unaudited: list[str] = field(default_factory=list)  # pip-audit's skip reasons

    @property
    def ok(self) -> bool:
        return not self.vulnerable and not self.unaudited


def read_ignores(path: Path) -> dict[str, str]:
    """The excepted vulnerability ids and their reasons: ``ID reason...`` a line, '#' a
    comment; an id without a reason or twice is an error naming the line."""
    ignores: dict[str, str] = {}
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        vuln_id, _, reason = text.partition(" ")
        if not reason.strip():
            raise IgnoreFileError(f"{path.name}:{number}: {vuln_id}: a reason is required")
        if vuln_id in ignores:
            raise IgnoreFileError(f"{path.name}:{number}: {vuln_id}: listed twice")
        ignores[vuln_id] = reason.strip()
    return ignores


def pins(freeze: str) -> tuple[list[str], list[str]]:
    """(``name==version`` lines to audit, lines that cannot be) from ``pip list
    --format=freeze``; a local label is dropped (torch 2.13.0+cpu is torch 2.13.0's source)."""
    auditable, not_pinned = [], []
    for line in freeze.splitlines():
        name, sep, version = line.strip().partition("==")
        if not line.strip():
            continue
        if not sep:
            not_pinned.append(f"{line.strip()}: not a release of the index")
            continue
        auditable.append(f"{name}=={version.split('+', 1)[0]}")
    return auditable, not_pinned


def pip_audit(run: Run, requirements: Sequence[str], service: str) -> dict[str, object] | None:
    """pip-audit's JSON report of ``requirements`` (pinned, no resolution); None when it
    failed without one (the service unreachable)."""
    with tempfile.TemporaryDirectory() as tmp:
        req, out = Path(tmp) / "requirements.txt", Path(tmp) / "report.json"
        req.write_text("".join(f"{r}\n" for r in requirements), "utf-8")
        run([*PIP_AUDIT, "-r", str(req), "--no-deps", "--disable-pip", "-s", service,
             "-f", "json", "-o", str(out), "--progress-spinner", "off"])
        try:
            report: dict[str, object] = json.loads(out.read_text("utf-8"))
        except (OSError, ValueError):
            return None
    return report


def service_answers(run: Run, service: str) -> bool:
    """The service reports the canary's known vulnerabilities."""
    report = pip_audit(run, [CANARY], service)
    deps = report.get("dependencies", []) if report else []
    return any(d.get("vulns") for d in deps if isinstance(d, dict))


def judge(report: dict[str, object], ignores: dict[str, str]) -> Report:
    out = Report()
    deps = report.get("dependencies", [])
    for dep in deps if isinstance(deps, list) else []:
        where = f"{dep.get('name')} {dep.get('version', '')}".strip()
        if dep.get("skip_reason"):
            out.unaudited.append(str(dep["skip_reason"]))
        for vuln in dep.get("vulns", []):
            ids = [vuln["id"], *vuln.get("aliases", [])]
            excepted = next((i for i in ids if i in ignores), None)
            if excepted:
                out.excepted.append(f"{where}: {vuln['id']}: {ignores[excepted]}")
            else:
                fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
                out.vulnerable.append(f"{where}: {vuln['id']} "
                                      f"({', '.join(vuln.get('aliases', []))}; fix: {fixes})")
    return out


def audit(run: Run, freeze: str, ignores: dict[str, str], required: bool) -> int:
    service = next((s for s in SERVICES if service_answers(run, s)), None)
    if service is None:
        say = "FAILED" if required else "SKIPPED"
        print(f"pip-audit: {say}: no vulnerability service answers from here (none of "
              f"{', '.join(SERVICES)} reported the canary {CANARY}); nothing was audited")
        return 1 if required else 0
    auditable, not_pinned = pins(freeze)
    report = pip_audit(run, auditable, service)
    if report is None:
        print(f"pip-audit: FAILED: the {service} service stopped answering mid-audit")
        return 1
    result = judge(report, ignores)
    result.unaudited += not_pinned
    for line in result.excepted:
        print(f"pip-audit: excepted (pip-audit-ignore.txt): {line}")
    for line in result.unaudited:
        print(f"pip-audit: NOT AUDITED: {line}")
    for line in result.vulnerable:
        print(f"pip-audit: VULNERABLE: {line}")
    print(f"pip-audit ({service}): {len(auditable)} distributions, "
          f"{len(result.vulnerable)} vulnerable, {len(result.excepted)} excepted, "
          f"{len(result.unaudited)} not audited")
    return 0 if result.ok else 1


def _run(cmd: Sequence[str]) -> tuple[int, str, str]:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ignore-file", type=Path, default=IGNORE_FILE)
    args = parser.parse_args(argv)
    try:
        ignores = read_ignores(args.ignore_file)
    except (OSError, IgnoreFileError) as err:
        print(f"pip-audit: {err}", file=sys.stderr)
        return 2
    rc, freeze, err = _run([sys.executable, "-m", "pip", "list", "--format=freeze",
                            "--exclude-editable", "--disable-pip-version-check"])
    if rc != 0 or not freeze.strip():
        print(f"pip-audit: pip list failed (exit {rc}): {err.strip()[-500:]}", file=sys.stderr)
        return 2
    required = os.environ.get("SMARTPBX_AUDIT", "") == "required"
    return audit(_run, freeze, ignores, required)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Per-area coverage against the seed's targets, read from a coverage data file.

The seed (backend-testing-strategy.md, "Coverage Targets") names its modules; ours map to:
sip -> sipcaller (the only SIP code of ours: Asterisk speaks SIP for the product),
media -> media, ai -> ai, api -> web, db -> store (migrations left out, as the seed's
.coveragerc omits them), integrations -> telephony (Asterisk's ARI, AMI, FastAGI).
call and cli have no seed target and are reported only.

Each area's figure is coverage's own (statements and branches, as ``coverage report``).
An area is a failing gate only if listed in :data:`GATED`: those met the target when the
gate was set. The full test run (tests/coverage_gate.py) prints this table at its end and
fails on a gated area below target; ``--gate`` does the same here.

    .venv/bin/python scripts/coverage_report.py [--data-file .coverage] [--gate]
"""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import coverage
from coverage.exceptions import NoDataError

PACKAGE = "smartpbx_ari"


@dataclass(frozen=True)
class Area:
    name: str  # the seed's
    folders: tuple[str, ...]  # ours, under the package
    target: float | None  # percent; None: reported only


AREAS = (
    Area("sip", ("sipcaller",), 85),
    Area("media", ("media",), 80),
    Area("ai", ("ai",), 75),
    Area("api", ("web",), 85),
    Area("db", ("store",), 90),
    Area("integrations", ("telephony",), 70),
    Area("call", ("call",), None),
    Area("cli", ("cli",), None),
)
OMIT = (f"*/{PACKAGE}/store/migrations/*",)
# Areas at or above their target today (2026-11-28, the last recorded run of the suite:
# sip 92.3, media 93.9, ai 78.3): a drop below fails the full run. The others are reported
# against their target until they reach it (then add them here).
# every area with a target: the full run of 39641a0 met each (sip 93.6, media 97.3, ai 95.5,
# api 94.9, db 95.2, integrations 83.8)
GATED = frozenset({"sip", "media", "ai", "api", "db", "integrations"})


@dataclass(frozen=True)
class Figure:
    area: Area
    percent: float | None  # None: no file of the area was measured

    @property
    def met(self) -> bool:
        target = self.area.target
        return target is None or (self.percent is not None and self.percent >= target)

    @property
    def failing(self) -> bool:
        return self.area.name in GATED and not self.met


def figures(cov: coverage.Coverage) -> list[Figure]:
    """Each area's coverage in ``cov``'s data (as ``coverage report --include`` gives it)."""
    out = []
    for area in AREAS:
        include = [f"*/{PACKAGE}/{folder}/*" for folder in area.folders]
        try:
            percent: float | None = cov.report(include=include, omit=list(OMIT),
                                               file=io.StringIO())
        except NoDataError:
            percent = None
        out.append(Figure(area, percent))
    return out


def format_report(rows: list[Figure]) -> str:
    lines = [f"{'area':<14}{'ours':<12}{'cover':>8}{'target':>8}  status"]
    for row in rows:
        area = row.area
        cover = "-" if row.percent is None else f"{row.percent:.1f}%"
        target = "-" if area.target is None else f"{area.target:.0f}%"
        if area.target is None:
            status = "reported"
        elif row.met:
            status = "ok" + (" (gate)" if area.name in GATED else "")
        else:
            status = "FAIL (gate)" if row.failing else "below target (not gated yet)"
        lines.append(f"{area.name:<14}{','.join(area.folders):<12}{cover:>8}{target:>8}  "
                     f"{status}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-file", type=Path, default=Path(".coverage"))
    parser.add_argument("--gate", action="store_true",
                        help="exit 1 when a gated area is below its target")
    args = parser.parse_args(argv)
    if not args.data_file.is_file():
        print(f"--data-file: {args.data_file} does not exist (run the tests first)",
              file=sys.stderr)
        return 2
    cov = coverage.Coverage(data_file=str(args.data_file))
    cov.load()
    rows = figures(cov)
    print(format_report(rows))
    return 1 if args.gate and any(row.failing for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

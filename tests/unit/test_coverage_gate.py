"""Which runs carry the coverage gates (only the full one), and the per-area verdicts."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.coverage_gate import coverage_report, is_full_run

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def config(args: list[str], here: Path = ROOT, **options: Any) -> Any:
    option = SimpleNamespace(markexpr="", keyword="", lf=False, deselect=None, ignore=None,
                             ignore_glob=None)
    option.__dict__.update(options)
    return SimpleNamespace(option=option, rootpath=ROOT, args=args,
                           invocation_params=SimpleNamespace(dir=here))


@pytest.mark.parametrize(("args", "here"), [
    (["tests"], ROOT),  # bare `pytest`: testpaths
    ([str(ROOT / "tests")], Path("/")),
    ([".."], ROOT / "tests"),
])
def test_the_whole_suite_is_the_full_run(args: list[str], here: Path) -> None:
    assert is_full_run(config(args, here))


@pytest.mark.parametrize(("args", "options"), [
    (["tests"], {"markexpr": "smoke"}),
    (["tests"], {"keyword": "rtp"}),
    (["tests"], {"lf": True}),
    (["tests"], {"deselect": ["tests/unit/test_layout.py"]}),
    (["tests"], {"ignore": ["tests/e2e"]}),
    (["tests/unit"], {}),
    (["tests", "tests/unit/test_rtp_parser.py::test_strip_rtp_header"], {}),
])
def test_a_narrower_run_is_not(args: list[str], options: dict[str, Any]) -> None:
    assert not is_full_run(config(args, **options))


def row(name: str, percent: float | None) -> Any:
    area = next(a for a in coverage_report.AREAS if a.name == name)
    return coverage_report.Figure(area, percent)


def test_only_a_gated_area_below_its_target_fails() -> None:
    gated = sorted(coverage_report.GATED)[0]
    assert row(gated, 10.0).failing and not row(gated, 99.0).failing
    assert row(gated, None).failing  # not measured at all is not a pass
    assert {a.name for a in coverage_report.AREAS if a.target is not None} \
        == coverage_report.GATED  # every seed target is a gate
    assert not row("cli", 0.0).failing  # no target: reported only


def test_the_report_names_each_area_with_its_figure_target_and_verdict() -> None:
    gated = sorted(coverage_report.GATED)[0]
    text = coverage_report.format_report([row(gated, 12.5), row("api", 90.0),
                                          row("cli", None)])
    lines = text.splitlines()
    assert lines[1].split()[0] == gated and "12.5%" in lines[1] and "FAIL (gate)" in lines[1]
    assert "api" in lines[2] and "90.0%" in lines[2] and "85%" in lines[2] and "ok" in lines[2]
    assert lines[3].split()[:2] == ["cli", "cli"] and "reported" in lines[3]

"""The coverage gates belong to the full run: pytest hooks, imported by tests/conftest.py.

The full run (no path but the whole of tests/, no -m, -k, --lf, --deselect or --ignore: what
``bash scripts/dev.sh test`` and .ci/run do) keeps pyproject's ``--cov-fail-under`` and
ends with the per-area table of scripts/coverage_report.py, failing on a gated area below
its seed target. Any narrower run (``-m smoke``, ``tests/unit``, one file) measures a part
of the product, so the overall gate is off there (unless ``--cov-fail-under`` is given on
the command line) and no area is judged.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "coverage_report.py"
_FIGURES = pytest.StashKey[list[Any]]()


def _load_report() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coverage_report", _SCRIPT)
    assert spec is not None and spec.loader is not None, _SCRIPT
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


coverage_report = _load_report()


def is_full_run(config: pytest.Config) -> bool:
    """Every test selected: the whole tests/ (or the project root), nothing filtered out."""
    option = config.option
    narrowing = ("markexpr", "keyword", "lf", "deselect", "ignore", "ignore_glob")
    if any(getattr(option, name, None) for name in narrowing):
        return False
    root = config.rootpath
    whole = {root, root / "tests"}
    here = config.invocation_params.dir
    return all((here / arg.split("::")[0]).resolve() in whole for arg in config.args)


def _fail_under_given(config: pytest.Config) -> bool:
    return any(arg.startswith("--cov-fail-under") for arg in config.invocation_params.args)


def _coverage(config: pytest.Config) -> Any:
    """pytest-cov's Coverage object with the run's data, or None (no --cov, a worker)."""
    plugin = config.pluginmanager.getplugin("_cov")
    if plugin is None or getattr(config, "workerinput", None) is not None:
        return None
    controller = getattr(plugin, "cov_controller", None)
    return None if controller is None else controller.cov


def pytest_configure(config: pytest.Config) -> None:
    plugin = config.pluginmanager.getplugin("_cov")
    if plugin is not None and not is_full_run(config) and not _fail_under_given(config):
        plugin.options.cov_fail_under = 0  # its own copy of the options, read at the end


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    cov = _coverage(config)
    if cov is None or config.option.collectonly or not is_full_run(config):
        return
    rows = coverage_report.figures(cov)
    config.stash[_FIGURES] = rows
    if any(row.failing for row in rows) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(trylast=True)  # after pytest-cov's own table
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    rows = config.stash.get(_FIGURES, None)
    if rows is None:
        return
    terminalreporter.write_sep("=", "coverage by area (the seed's targets)")
    terminalreporter.write_line(coverage_report.format_report(rows))
    failing = [row.area.name for row in rows if row.failing]
    if failing:
        terminalreporter.write_line(f"FAIL: {', '.join(failing)} below target", red=True,
                                    bold=True)

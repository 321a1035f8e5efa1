"""optuna-dashboard shows the study's notes and the trials' notes and adapters, checked in
a real browser (headless Chromium; skipped where none is installed)."""

from __future__ import annotations

import pytest
from conftest import import_benchmark


def test_notes_and_artifacts_render_in_a_browser(tmp_path):
    dashboard_check = import_benchmark("dashboard_check")
    browser = dashboard_check.find_browser()
    if browser is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    storage, artifacts = dashboard_check.run_study(tmp_path, trials=2)
    missing = dashboard_check.check(browser, storage, artifacts, tmp_path / "shots")
    assert missing == []
    assert (tmp_path / "shots" / "note.png").stat().st_size > 10_000
    assert (tmp_path / "shots" / "trials.png").stat().st_size > 10_000

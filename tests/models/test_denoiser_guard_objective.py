"""The filter-guard calibration's objectives (tools/denoiser_guard.py, issue 22): ``targets`` counts the cells that
beat the Butterworth filter by the issue's margins before it looks at the mean output SNR."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "denoiser_guard.py"


@pytest.fixture(scope="module")
def guard_tool():
    spec = importlib.util.spec_from_file_location("denoiser_guard_tool", TOOL)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_margins_follow_issue_22(guard_tool):
    assert [guard_tool.target_margin(f"em {s} dB") for s in (24, 18, 12, 6, 0, -6)] == [0, 0, 3, 3, 3, 3]


def test_targets_objective_prefers_more_cells_met_over_a_higher_mean(guard_tool):
    bw = {"em 24 dB": 18.0, "em 12 dB": 6.0}
    safe = {"em 24 dB": 18.1, "em 12 dB": 9.5}    # both cells met, mean 13.8
    greedy = {"em 24 dB": 16.0, "em 12 dB": 14.0}  # 24 dB cell missed by 2 dB, mean 15.0
    assert guard_tool.score(greedy, bw, "mean") > guard_tool.score(safe, bw, "mean")
    assert guard_tool.score(safe, bw, "targets") == (2, 0.0, pytest.approx(13.8))
    assert guard_tool.score(greedy, bw, "targets") == (1, -2.0, 15.0)
    assert guard_tool.score(safe, bw, "targets") > guard_tool.score(greedy, bw, "targets")
    worse_miss = {"em 24 dB": 15.0, "em 12 dB": 14.0}
    assert guard_tool.score(greedy, bw, "targets") > guard_tool.score(worse_miss, bw, "targets")

"""The benchmark's comparison summary and stage timer (the benchmark itself is too slow for tests)."""

import statistics

import pytest
import torch
from torch import nn

from sam2_model.benchmark import RatioSummary, StageTimer, official_fills_holes, parse_args


def test_ratio_summary_reports_median_and_spread():
    ratios = [0.91, 0.98, 1.00, 0.95]
    line = RatioSummary(ratios).line()
    assert f"median {statistics.median(ratios):.2f}x" in line
    assert "min 0.91x" in line and "max 1.00x" in line
    assert "over 4 repeat(s)" in line


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(4, 4)
        self.other = nn.Linear(4, 4)

    def forward(self, x):
        return self.other(self.inner(x))


def test_stage_timer_counts_only_while_enabled_and_removes_its_hooks():
    root = nn.Sequential(Block(), Block())
    timer = StageTimer(root, torch.device("cpu"), stages=(("inner", ("*.inner",)), ("blocks", ("[01]",))))
    calls = []
    wrapped = timer.wrap("function", lambda value: calls.append(value) or value)
    x = torch.randn(2, 4)
    root(x)
    wrapped(1)
    assert timer.totals_ms == {"inner": 0.0, "blocks": 0.0, "function": 0.0}
    timer.enabled = True
    root(x)
    assert wrapped(2) == 2
    assert timer.totals_ms["inner"] > 0.0 and timer.totals_ms["function"] > 0.0
    # The two blocks include their inner layers.
    assert timer.totals_ms["blocks"] >= timer.totals_ms["inner"]
    timer.remove()
    before = dict(timer.totals_ms)
    root(x)
    assert timer.totals_ms == before and calls == [1, 2]


def test_stage_timer_names_a_stage_without_modules():
    with pytest.raises(ValueError, match="stage 'missing': no module matches"):
        StageTimer(nn.Linear(2, 2), torch.device("cpu"), stages=(("missing", ("nothing.here",)),))


def test_no_hole_filling_asked_means_none_on_the_official_side():
    assert official_fills_holes(0) is False


def test_repeats_and_fill_hole_area_options():
    args = parse_args(["--tracker", "--repeats", "5", "--fill-hole-area", "0", "--stages"])
    assert (args.repeats, args.fill_hole_area, args.stages) == (5, 0, True)
    assert parse_args([]).fill_hole_area is None  # None: the tracker's own default

"""Hole filling: connected-component areas against a brute-force flood fill (8-connectivity)."""

import numpy as np
import torch

from sam2_model.holes import HOLE_FILL_LOGIT, connected_component_areas, fill_holes

from flood_fill import component_areas


def test_component_areas_match_flood_fill():
    rng = np.random.default_rng(0)
    for density in (0.2, 0.45, 0.6):
        regions = rng.random((3, 23, 31)) < density
        ours = connected_component_areas(torch.from_numpy(regions)).numpy()
        for region, areas in zip(regions, ours):
            assert np.array_equal(areas, component_areas(region))


def test_long_serpentine_component():
    region = np.zeros((32, 32), dtype=bool)
    region[::2, :] = True
    region[1::4, -1] = True
    region[3::4, 0] = True
    areas = connected_component_areas(torch.from_numpy(region)[None])[0].numpy()
    assert np.array_equal(areas, component_areas(region))
    assert areas.max() == region.sum()


def test_fill_holes_fills_only_small_background_regions():
    logits = torch.full((1, 1, 20, 20), 5.0)
    logits[0, 0, 2:4, 2:4] = -3.0      # 4-pixel hole: filled
    logits[0, 0, 10:13, 10:13] = -3.0  # 9-pixel hole: kept with max_area 8
    logits[0, 0, 0, 19] = -1.0         # 1 pixel at the border: filled too (as upstream)
    out = fill_holes(logits, max_area=8)
    assert torch.all(out[0, 0, 2:4, 2:4] == HOLE_FILL_LOGIT)
    assert torch.all(out[0, 0, 10:13, 10:13] == -3.0)
    assert out[0, 0, 0, 19] == HOLE_FILL_LOGIT
    assert torch.equal(fill_holes(logits, max_area=0), logits)
    changed = out != logits
    assert changed.sum() == 5

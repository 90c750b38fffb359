"""Which generated masks discovery adds: constructed scenes of rectangles, expected picks written out."""

import numpy as np
import pytest

from sam2_model.automatic_mask_generator import GeneratedMask
from sam2_model.discovery import DiscoveryError, DiscoveryOptions, check_region, discover_objects

H, W = 40, 50


def rect(x, y, w, h) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y:y + h, x:x + w] = True
    return mask


def generated(mask: np.ndarray, iou: float = 0.9) -> GeneratedMask:
    ys, xs = np.nonzero(mask)
    box = (float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min()))
    return GeneratedMask(mask, int(mask.sum()), box, iou, 0.95, [[0.0, 0.0]], (0.0, 0.0, W, H))


def areas(masks):
    return [m.area for m in masks]


def test_largest_first_parts_and_duplicates_dropped():
    whole, part = rect(0, 0, 10, 10), rect(0, 0, 5, 5)   # a part is covered by its whole
    other = rect(20, 20, 6, 6)
    picked = discover_objects(None, [generated(part), generated(other), generated(whole)],
                              DiscoveryOptions(min_area=0.0))
    assert areas(picked) == [100, 36]


def test_tracked_objects_are_never_duplicated():
    tracked = np.stack([rect(0, 0, 10, 10)])
    shifted = rect(2, 2, 10, 10)            # 64 of its 100 pixels are tracked: > 0.5
    group = rect(0, 0, 30, 30)              # holds the whole tracked object: a group, not new
    new = rect(30, 5, 8, 8)
    picked = discover_objects(tracked, [generated(m) for m in (shifted, group, new)],
                              DiscoveryOptions(min_area=0.0, max_area=1.0))
    assert [m.area for m in picked] == [64]
    assert np.array_equal(picked[0].segmentation, new)


def test_overlap_threshold_is_the_parameter():
    tracked = np.stack([rect(0, 0, 10, 10)])
    half = rect(5, 0, 10, 4)                 # 20 of its 40 pixels tracked (0.5), 20% of the tracked one
    assert len(discover_objects(tracked, [generated(half)], DiscoveryOptions(min_area=0.0, max_overlap=0.5))) == 1
    assert discover_objects(tracked, [generated(half)], DiscoveryOptions(min_area=0.0, max_overlap=0.4)) == []


def test_size_limits_order_and_limit():
    tiny, big = rect(0, 0, 2, 2), rect(0, 0, 40, 40)     # 4 / 2000 and 1600 / 2000 of the frame
    a, b, c = rect(10, 0, 5, 5), rect(20, 0, 6, 6), rect(30, 0, 7, 7)
    masks = [generated(tiny), generated(big), generated(a, 0.99), generated(b, 0.7), generated(c, 0.8)]
    options = DiscoveryOptions(min_area=0.005, max_area=0.5)
    assert areas(discover_objects(None, masks, options)) == [49, 36, 25]
    assert areas(discover_objects(None, masks, DiscoveryOptions(min_area=0.005, order="score"))) == [25, 49, 36]
    assert areas(discover_objects(None, masks, options, limit=2)) == [49, 36]
    assert discover_objects(None, masks, options, limit=0) == []


def test_region_keeps_masks_mostly_inside():
    left, right = rect(0, 0, 10, 10), rect(30, 0, 10, 10)
    straddling = rect(16, 20, 10, 10)                   # 4 of its 10 columns inside x < 20
    picked = discover_objects(None, [generated(m) for m in (left, right, straddling)],
                              DiscoveryOptions(min_area=0.0), region=(0, 0, 20, H))
    assert len(picked) == 1 and np.array_equal(picked[0].segmentation, left)


@pytest.mark.parametrize("region", [(-1, 0, 5, 5), (0, 0, W + 1, 5), (45, 0, 10, 5), (0, 38, 5, 5), (0, 0, 0, 5)])
def test_region_outside_the_frame_is_refused(region):
    with pytest.raises(DiscoveryError, match="not inside the 50x40 frame"):
        check_region(region, (H, W))


def test_empty_region_is_the_whole_frame():
    assert check_region((0, 0, 0, 0), (H, W)) is None
    assert check_region((1, 2, 3, 4), (H, W)) == (1, 2, 3, 4)


def test_bad_options_and_inputs_are_named():
    with pytest.raises(DiscoveryError, match="max_overlap 1.5 must be in"):
        discover_objects(None, [], DiscoveryOptions(max_overlap=1.5))
    with pytest.raises(DiscoveryError, match="order 'big'"):
        discover_objects(None, [], DiscoveryOptions(order="big"))
    # Wrong types are named, not left to fail a comparison ("'<=' not supported ...").
    with pytest.raises(DiscoveryError, match="min_area must be a number, got 'x'"):
        discover_objects(None, [], DiscoveryOptions(min_area="x"))
    with pytest.raises(DiscoveryError, match="max_overlap must be a number, got True"):
        discover_objects(None, [], DiscoveryOptions(max_overlap=True))
    with pytest.raises(DiscoveryError, match="min_inside nan must be in"):
        discover_objects(None, [], DiscoveryOptions(min_inside=float("nan")))
    with pytest.raises(DiscoveryError, match=r"order \['area'\]"):
        discover_objects(None, [], DiscoveryOptions(order=["area"]))
    with pytest.raises(DiscoveryError, match="limit must be >= 0"):
        discover_objects(None, [generated(rect(0, 0, 5, 5))], limit=-1)
    with pytest.raises(DiscoveryError, match="same frame"):
        discover_objects(np.zeros((1, 10, 10), bool), [generated(rect(0, 0, 5, 5))])

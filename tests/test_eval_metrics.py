"""DAVIS metrics and prompt geometry on cases worked out by hand."""

import math

import numpy as np
import pytest

from sam2_ros.evaluation.metrics import (
    boundary_f,
    boundary_radius,
    decay_bins,
    dilate_disk,
    jf_mean,
    region_similarity,
    seg2bmap,
    series_stats,
)
from sam2_ros.evaluation.prompts import (
    PromptKind,
    box_from_mask,
    interior_point,
    prompt_from_mask,
    prompts_for_new_objects,
    squared_distance_to_background,
)


def square(shape, y0, y1, x0, x1):
    m = np.zeros(shape, dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def stripe(shape, x0, x1):
    """Full-height vertical stripe of columns [x0, x1)."""
    return square(shape, 0, shape[0], x0, x1)


# ---------------------------------------------------------------- J


def test_identical_masks_score_one():
    m = square((20, 30), 4, 12, 5, 20)
    assert region_similarity(m, m) == 1.0
    assert boundary_f(m, m) == 1.0


def test_disjoint_masks_score_zero():
    a = square((40, 60), 2, 10, 2, 10)
    b = square((40, 60), 25, 35, 40, 55)
    assert region_similarity(a, b) == 0.0
    # Boundaries are far more than ceil(0.008 * 72.1) = 1 pixel apart: no match at all.
    assert boundary_f(a, b) == 0.0


def test_both_empty_is_perfect():
    empty = np.zeros((10, 15), dtype=bool)
    assert region_similarity(empty, empty) == 1.0
    assert boundary_f(empty, empty) == 1.0


@pytest.mark.parametrize("which", ["pred", "gt"])
def test_one_empty_scores_zero(which):
    m = square((10, 15), 2, 6, 3, 9)
    empty = np.zeros_like(m)
    pred, gt = (empty, m) if which == "pred" else (m, empty)
    assert region_similarity(pred, gt) == 0.0
    assert boundary_f(pred, gt) == 0.0  # precision 1 / recall 0, or precision 0 / recall 1


def test_iou_counts_pixels():
    gt = square((10, 10), 0, 4, 0, 4)  # 16 px
    pred = square((10, 10), 2, 6, 2, 6)  # 16 px, 4 shared
    assert region_similarity(pred, gt) == pytest.approx(4 / 28)


def test_void_pixels_are_ignored():
    gt = square((10, 10), 2, 6, 2, 6)
    pred = square((10, 10), 2, 6, 2, 9)  # spills 3 columns to the right
    void = square((10, 10), 0, 10, 6, 10)  # ... all of it into void
    assert region_similarity(pred, gt) == pytest.approx(16 / 28)
    assert region_similarity(pred, gt, void) == 1.0
    assert boundary_f(pred, gt, void=void) == 1.0


# ---------------------------------------------------------------- boundaries


def test_seg2bmap_square():
    # A 2x2 square at rows 1-2, cols 1-2 of a 5x5 image. A pixel is boundary when it differs
    # from its east, south or south-east neighbour: the 8 pixels of a ring shifted up-left.
    m = square((5, 5), 1, 3, 1, 3)
    expected = np.zeros((5, 5), dtype=bool)
    for y, x in [(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)]:
        expected[y, x] = True
    np.testing.assert_array_equal(seg2bmap(m), expected)


def test_seg2bmap_stripe_is_two_columns():
    # Columns [10, 20): the background column 9 (east neighbour differs) and column 19.
    b = seg2bmap(stripe((30, 40), 10, 20))
    assert sorted(set(np.nonzero(b)[1])) == [9, 19]
    assert b.sum() == 2 * 30


def test_boundary_radius():
    # 30x40 has a diagonal of 50: ceil(0.008 * 50) = ceil(0.4) = 1 pixel.
    assert boundary_radius((30, 40)) == 1
    # DAVIS 480p frames (480x854, diagonal 979.65): ceil(7.84) = 8 pixels.
    assert boundary_radius((480, 854)) == 8
    # bound_th >= 1 is a radius in pixels.
    assert boundary_radius((480, 854), 3) == 3


def test_dilate_disk_counts():
    point = np.zeros((9, 9), dtype=bool)
    point[4, 4] = True
    # radius 1: the point and its 4 neighbours; radius 2: dx^2 + dy^2 <= 4 is 13 offsets.
    assert dilate_disk(point, 1).sum() == 5
    assert dilate_disk(point, 2).sum() == 13
    assert dilate_disk(point, 2)[4, 2] and not dilate_disk(point, 2)[2, 2]


# Non-square 30x40 frame, tolerance 1 px. Stripe boundaries are whole columns, so
# precision and recall are fractions of columns matched.
@pytest.mark.parametrize(
    "shift, expected_j, expected_f",
    [
        (0, 1.0, 1.0),
        (1, 9 / 11, 1.0),  # boundaries 1 px apart: within tolerance
        (2, 8 / 12, 0.0),  # 2 px apart: beyond it, nothing matches
    ],
)
def test_shift_within_and_beyond_tolerance(shift, expected_j, expected_f):
    gt = stripe((30, 40), 10, 20)
    pred = stripe((30, 40), 10 + shift, 20 + shift)
    assert region_similarity(pred, gt) == pytest.approx(expected_j)
    assert boundary_f(pred, gt) == pytest.approx(expected_f)
    # The transposed (40x30) frame has the same diagonal and the same answers.
    assert region_similarity(pred.T, gt.T) == pytest.approx(expected_j)
    assert boundary_f(pred.T, gt.T) == pytest.approx(expected_f)


def test_half_matched_boundary():
    # pred [10, 25) vs gt [10, 20): boundary columns 9, 24 vs 9, 19. Column 9 matches on both
    # sides, the others are 5 px apart: precision = recall = 1/2, so F = 1/2.
    gt = stripe((30, 40), 10, 20)
    pred = stripe((30, 40), 10, 25)
    assert region_similarity(pred, gt) == pytest.approx(10 / 15)
    assert boundary_f(pred, gt) == pytest.approx(0.5)


def test_pixel_tolerance():
    gt = stripe((30, 40), 10, 20)
    assert boundary_f(stripe((30, 40), 12, 22), gt, bound_th=2) == 1.0
    assert boundary_f(stripe((30, 40), 13, 23), gt, bound_th=2) == 0.0


def test_large_frame_tolerance_scales_with_diagonal():
    # 480x854: tolerance 8 px. A shift of 8 columns still matches every boundary pixel, 9 none.
    gt = stripe((480, 854), 100, 300)
    assert boundary_f(stripe((480, 854), 108, 308), gt) == 1.0
    assert boundary_f(stripe((480, 854), 109, 309), gt) == 0.0


def test_masks_must_match_in_shape():
    with pytest.raises(ValueError, match="shape"):
        region_similarity(np.zeros((4, 4), bool), np.zeros((4, 5), bool))


# ---------------------------------------------------------------- statistics


def test_series_stats_by_hand():
    values = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    stats = series_stats(values)
    assert stats.mean == pytest.approx(4.4 / 8)
    assert stats.recall == pytest.approx(4 / 8)  # 0.5 itself is not above 0.5
    # DAVIS quarters for 8 frames: [0:3], [2:5], [4:6], [5:8]; decay = mean(.9,.8,.7) - mean(.4,.3,.2)
    assert stats.decay == pytest.approx(0.8 - 0.3)
    assert stats.num_frames == 8


def test_decay_bins_match_davis():
    # round(linspace(1, n, 5) + 1e-10) - 1 -> ids; quarter i = [ids[i], ids[i+1]] inclusive
    assert decay_bins(8) == [slice(0, 3), slice(2, 5), slice(4, 6), slice(5, 8)]
    assert decay_bins(4) == [slice(0, 2), slice(1, 3), slice(2, 3), slice(2, 4)]
    assert decay_bins(1) == [slice(0, 1)] * 4


def test_constant_series_has_no_decay():
    stats = series_stats([1.0] * 5)
    assert (stats.mean, stats.recall, stats.decay) == (1.0, 1.0, 0.0)


def test_series_stats_needs_values():
    with pytest.raises(ValueError):
        series_stats([])


def test_jf_mean():
    assert jf_mean(0.6, 0.8) == pytest.approx(0.7)


# ---------------------------------------------------------------- prompts


def test_box_from_mask():
    m = square((10, 12), 2, 7, 1, 10)
    assert box_from_mask(m) == (1, 2, 9, 6)


def test_interior_point_of_rectangle():
    # Rows 2-6, cols 1-9 of a 10x12 frame: the distance is min(3, x, 10 - x) on row 4 and less
    # elsewhere; the first pixel at distance 3 in row-major order is (x=3, y=4).
    m = square((10, 12), 2, 7, 1, 10)
    assert interior_point(m) == (3, 4)


def test_interior_point_treats_image_edge_as_boundary():
    # A band on the top 4 rows of an 8x8 frame: distance min(y + 1, 4 - y, x + 1, 8 - x) peaks at 2;
    # the first such pixel is (x=1, y=1), not on the edge.
    m = square((8, 8), 0, 4, 0, 8)
    assert interior_point(m) == (1, 1)


def brute_force_distance2(mask):
    """Squared distance to the nearest background pixel, outside-the-array counting as background."""
    padded = np.pad(mask, 1)
    by, bx = np.nonzero(~padded)
    h, w = mask.shape
    yy, xx = np.mgrid[1 : h + 1, 1 : w + 1]
    d2 = np.min((yy[..., None] - by) ** 2 + (xx[..., None] - bx) ** 2, axis=-1)
    return np.where(mask, d2, 0)


def test_distance_transform_and_interior_point_against_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(60):
        h, w = (int(v) for v in rng.integers(1, 25, 2))
        mask = rng.random((h, w)) < rng.uniform(0.4, 0.98)
        if not mask.any():
            continue
        expected = brute_force_distance2(mask)
        np.testing.assert_array_equal(squared_distance_to_background(mask), expected)
        y, x = np.unravel_index(np.argmax(expected), expected.shape)
        assert interior_point(mask) == (x, y)


def test_click_of_a_ring_lies_on_the_ring():
    yy, xx = np.mgrid[0:41, 0:41]
    r2 = (yy - 20) ** 2 + (xx - 20) ** 2
    ring = (r2 <= 18**2) & (r2 > 8**2)
    x, y = interior_point(ring)
    assert ring[y, x]
    assert math.hypot(x - 20, y - 20) == pytest.approx(13, abs=1.5)  # mid-band radius


def test_prompts_for_new_objects():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[1:4, 1:4] = 2
    labels[6:9, 5:9] = 1
    labels[0, 9] = 255  # void is not an object
    prompts = prompts_for_new_objects(labels, prompted={2}, kind=PromptKind.BOX, void_label=255)
    assert [p.obj_id for p in prompts] == [1]
    assert prompts[0].box == (5, 6, 8, 8)
    kwargs = prompt_from_mask(4, labels == 2, PromptKind.CLICK).tracker_kwargs()
    np.testing.assert_array_equal(kwargs["points"], [[2.0, 2.0]])
    np.testing.assert_array_equal(kwargs["labels"], [1])
    mask_kwargs = prompt_from_mask(2, labels == 2, PromptKind.MASK).tracker_kwargs()
    np.testing.assert_array_equal(mask_kwargs["mask"], labels == 2)

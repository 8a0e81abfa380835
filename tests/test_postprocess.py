"""The paper's opening with a disk of diameter 4, and its commuting with thresholds."""

import numpy as np
import pytest

from ssimlib.postprocess import disk_footprint, open_anomaly_map, segment


def test_diameter_4_disk():
    expected = np.array([[0, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 0]], bool)
    np.testing.assert_array_equal(disk_footprint(4), expected)
    assert disk_footprint(1).sum() == 1


def test_opening_removes_specks_keeps_blobs():
    residual = np.zeros((40, 40))
    residual[5, 5] = 1.0  # isolated pixel
    residual[10:12, 30:32] = 1.0  # 2x2: smaller than the disk
    residual[20:30, 20:30] = 1.0  # 10x10 blob
    mask = segment(residual, 0.5)
    assert not mask[5, 5] and not mask[10:12, 30:32].any()
    blob = np.zeros_like(mask)
    blob[20:30, 20:30] = True
    assert not (mask & ~blob).any() and mask[21:29, 21:29].all()  # only the corners round off
    assert mask.sum() >= 96


@pytest.mark.parametrize("diameter", [1, 3, 4, 5])
def test_threshold_commutes_with_grey_opening(diameter):
    residual = np.random.default_rng(diameter).random((48, 48))
    opened = open_anomaly_map(residual, diameter)
    for threshold in np.quantile(residual, [0.1, 0.5, 0.8, 0.95]):
        np.testing.assert_array_equal(segment(residual, threshold, diameter), opened > threshold)

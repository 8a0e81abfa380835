"""Where false positives lie (notebook 02, issue #38), on maps whose answer is counted by hand."""

import numpy as np
import pytest

from ssimlib.experiments.false_positives import false_positive_sources


def test_false_positives_are_counted_by_distance_per_image_and_on_the_training_images():
    maps = [np.zeros((40, 40)), np.zeros((40, 40))]
    masks = [np.zeros((40, 40), bool), np.zeros((40, 40), bool)]
    masks[0][:5, :5] = masks[1][30:35, 30:35] = True
    maps[0][:5, :5] = maps[1][30:35, 30:35] = 10.0  # the defects score highest
    maps[0][2, 8] = 5.0  # 4 px beside the defect
    maps[0][35, 35] = 5.0  # about 44 px from it
    training = [np.zeros((10, 10))]
    training[0].flat[:3] = 1.0
    good = 2 * (1600 - 25)
    sources = false_positive_sources(maps, masks, training, fpr=2 / good, near=20)
    assert sources["threshold"] == 0.0  # the two 5s are the only defect-free pixels above it
    assert sources["share_far_from_defects"] == pytest.approx(0.5)
    assert sources["per_image_fpr"] == pytest.approx([2 / 1575, 0.0])
    assert sources["training_image_fpr"] == pytest.approx(0.03)

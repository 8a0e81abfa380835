"""How bright defect regions' rims are (ssimlib.experiments.region_edges), against values set by hand."""

import numpy as np

from ssimlib.experiments.region_edges import rim_contrast


def test_rim_contrast_by_hand():
    # A 10x10 region: core (its 4x4 middle) at 1.0, rim at 0.8, on a background of 0.2 beyond 10 px of it:
    # (0.8 - 0.2) / (1.0 - 0.2) = 0.75. A margin of 5 px around it (closer than 10 px) is 0.5, and must not count.
    image, mask = np.full((60, 60, 3), 0.2), np.zeros((60, 60), bool)
    image[20:40, 20:40] = 0.5
    mask[25:35, 25:35] = True
    image[25:35, 25:35] = 0.8
    image[28:32, 28:32] = 1.0
    np.testing.assert_allclose(rim_contrast([image], [mask]), [0.75])

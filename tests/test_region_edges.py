"""How defect regions stand out (ssimlib.experiments.region_edges), against values set by hand."""

import numpy as np

from ssimlib.experiments.region_edges import region_contrasts


def test_region_contrasts_by_hand():
    # A 10x10 region: core (its 4x4 middle) at 1.0, rim at 0.8, on a background of 0.2 beyond 10 px of it:
    # contrasts 0.8 and 0.6. A margin of 5 px around it (closer than 10 px) is 0.5, and must not count.
    # A 2-px-thin region has no core: no row.
    image, mask = np.full((60, 60, 3), 0.2), np.zeros((60, 60), bool)
    image[20:40, 20:40] = 0.5
    mask[25:35, 25:35] = True
    image[25:35, 25:35] = 0.8
    image[28:32, 28:32] = 1.0
    mask[50:52, 5:30] = True
    np.testing.assert_allclose(region_contrasts([image], [mask]), [[0.8, 0.6]])
    np.testing.assert_allclose(region_contrasts([image[..., :1]], [mask]), [[0.8, 0.6]])  # one channel alike

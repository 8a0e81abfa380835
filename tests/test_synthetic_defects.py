"""The synthetic-defect measure (ssimlib.experiments.synthetic_defects) against references it cannot fake."""

import numpy as np
import pytest
from scipy import ndimage

from ssimlib.experiments import synthetic_defects as sd


def _crops(n=8, size=64, seed=0):
    """Texture-like crops in [0.2, 0.8]: smoothed noise."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.random((n, size, size)), (0, 1.5, 1.5))
    return (0.2 + 0.6 * (noise - noise.min()) / np.ptp(noise)).astype(np.float32)[..., None]


class _Returns:
    """A stand-in model whose reconstruction is ``reconstruct(images)``."""

    def __init__(self, reconstruct):
        self.reconstruct = reconstruct

    def predict(self, images, batch_size=None, verbose=0):
        return self.reconstruct(images)


def test_each_crop_gets_one_defect_of_its_kind_and_nothing_else_changes():
    crops = _crops()
    defective, masks, kinds = sd.add_defects(crops, seed=3)
    assert list(kinds) == [0, 1, 2, 3, 0, 1, 2, 3]
    change = defective[..., 0] - crops[..., 0]
    assert all(mask.any() for mask in masks)
    assert np.abs(change[~masks]).max() <= sd.MASK_CHANGE  # outside the masks at most the threshold
    for i, kind in enumerate(sd.KINDS):
        rows, cols = np.nonzero(masks[i])
        assert np.ptp(rows) <= 2 * 1.5 * 11 and np.ptp(cols) <= 2 * 1.5 * 11  # one disk of at most 11 px, soft edge
        if kind == "turned texture":  # its core is the crop turned by 90 degrees, exactly
            turned = np.rot90(crops[i, ..., 0])
            core = (np.abs(defective[i, ..., 0] - turned) < 1e-6) & (np.abs(turned - crops[i, ..., 0]) > 0.05)
            assert core.any() and masks[i][core].all()
        elif kind == "bright blob":
            assert change[i][masks[i]].min() > 0
        elif kind == "blurred disk":  # the texture smoothed: less spread inside the disk than before
            assert defective[i, ..., 0][masks[i]].std() < crops[i, ..., 0][masks[i]].std()
    again, _, _ = sd.add_defects(crops, seed=3)
    np.testing.assert_array_equal(again, defective)


def test_a_model_that_restores_the_defect_free_crop_finds_every_defect_pixel_and_one_that_copies_finds_none():
    crops = _crops()
    restores = _Returns(lambda images: crops)  # the perfect defect-free reconstruction
    l2 = sd.synthetic_scores(restores, crops, kind="l2")
    assert l2["pixel_auroc"] == 1.0  # squared change above MASK_CHANGE**2 exactly on the masks
    assert l2["defect_free_residual"] == 0.0
    copies = _Returns(lambda images: images)  # reconstructs the defect too: residual 0 everywhere
    assert sd.synthetic_scores(copies, crops, kind="l2")["pixel_auroc"] == 0.5
    ssim = sd.synthetic_scores(restores, crops, window_size=7)
    assert ssim["pixel_auroc"] > 0.8 and ssim["defect_free_residual"] == pytest.approx(0.0, abs=1e-9)
    assert set(ssim["pixel_auroc_by_kind"]) == set(sd.KINDS)


def test_the_command_names_a_model_it_cannot_load_in_one_line(tmp_path, capsys):
    assert sd.main(["--models", str(tmp_path / "nope"), "--results", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.json'}: no such model manifest (train the model " \
                                      "first, see README)\n"
    assert not (tmp_path / "r.json").exists()

"""The synthetic-defect measure (ssimlib.experiments.synthetic_defects) against references it cannot fake."""

import subprocess
import sys

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


def test_the_pass_through_is_the_share_of_each_defect_a_model_reconstructs():
    crops = _crops()
    copies = sd.synthetic_scores(_Returns(lambda images: images), crops, kind="l2", seeds=(0,))
    restores = sd.synthetic_scores(_Returns(lambda images: crops), crops, kind="l2", seeds=(0,))
    halves = sd.synthetic_scores(_Returns(lambda images: 0.5 * images + 0.25), crops, kind="l2", seeds=(0, 1))
    blob_only = _Returns(lambda images: np.maximum(images, crops))  # keeps what is brighter than the crop
    for scores, share in ((copies, 1.0), (restores, 0.0), (halves, 0.5)):
        assert scores["defect_pass_through"] == pytest.approx(share, abs=1e-6)
        assert all(value == pytest.approx(share, abs=1e-6) for value in scores["defect_pass_through_by_kind"].values())
    by_kind = sd.synthetic_scores(blob_only, crops, kind="l2", seeds=(0,))["defect_pass_through_by_kind"]
    assert by_kind["bright blob"] == pytest.approx(1.0)  # a blob only brightens: kept whole
    assert 0.2 < by_kind["turned texture"] < 0.8  # about half of a turned texture's change is brightening
    assert sd.pass_through([1.0, -2.0], [2.0, -4.0]) == 0.5  # the least-squares slope, by hand: 10 / 20


def test_the_command_names_a_model_it_cannot_load_in_one_line(tmp_path, capsys):
    assert sd.main(["--models", str(tmp_path / "nope"), "--results", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nope.json'}: no such model manifest (train the model " \
                                      "first, see README)\n"
    assert not (tmp_path / "r.json").exists()


def test_the_command_line_says_one_line_without_the_backend_s_start_up_log(tmp_path):
    run = subprocess.run([sys.executable, "-m", "ssimlib", "synthetic-defects", "--models", str(tmp_path / "nope"),
                          "--results", str(tmp_path / "r.json")], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == (f"error: {tmp_path / 'nope.json'}: no such model manifest (train the model first, "
                          "see README)\n")


def test_two_models_of_one_name_are_refused_before_any_work(tmp_path, capsys):
    # the results keep a row per name: the second model would silently replace the first
    stems = [str(tmp_path / "a" / "ssim_ae"), str(tmp_path / "b" / "ssim_ae"), str(tmp_path / "l2_ae")]
    assert sd.main(["--models", *stems, "--results", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err == ("error: --models: more than one model named ssim_ae; the results keep one row "
                                       "per name: give each model a name of its own\n")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"a": 1}', '{"models": [1]}', None])
def test_a_results_file_it_did_not_write_is_named_before_any_measuring(tmp_path, capsys, content):
    # a tester's: read only after minutes of measuring, then a traceback, every row lost
    results = tmp_path / "r.json"
    if content is None:
        results.mkdir()
    else:
        results.write_text(content)
    assert sd.main(["--models", str(tmp_path / "nope"), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {results}: not a results file of this measure") and err.count("\n") == 1


def test_a_results_file_that_cannot_be_written_is_named_before_any_measuring(tmp_path, capsys):
    # a tester's: a --results under a file measured for minutes, then a traceback, the rows lost
    (tmp_path / "a_file").write_text("")
    results = tmp_path / "a_file" / "r.json"
    assert sd.main(["--models", str(tmp_path / "nope"), "--results", str(results)]) == 2
    assert capsys.readouterr().err == f"error: --results {results}: {tmp_path / 'a_file'} is a file, not a folder\n"


class _Model:
    def __init__(self, patch_size):
        self.patch_size = patch_size


@pytest.mark.parametrize("data, loss, patch, problem", [
    ("NanoTWICE, 5 defect-free images", "ssim", 128, None),
    ("NanoTWICE, 5 defect-free images", "l2", 128, None),
    ("mvtec_ad_grid_256/grid: 238 of 264", "ssim", 128, "not NanoTWICE"),
    ("NanoTWICE, 5 defect-free images", "vae", 128, "a model of loss 'vae'"),
    ("NanoTWICE, 5 defect-free images", "ssim", 32, "patches of 32 px; the defects need at least 57"),
])
def test_models_it_cannot_measure_are_refused(data, loss, patch, problem):
    # a tester's: an MVTec model, the FM-AE (scored with an SSIM residual) and a 32 px model were taken
    found = sd._unfit(_Model(patch), {"training": {"data": data, "settings": {"loss": loss}}})
    assert (found is None) if problem is None else (problem in found)

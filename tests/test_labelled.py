"""Pairing images with masks (:mod:`ssimlib.apps.labelled`): masks in a folder of their own given as images."""

import re

import numpy as np
import pytest
import skimage.io

from ssimlib.apps.labelled import find_labelled
from ssimlib.data import DatasetError
from ssimlib.synthetic import checkerboard, draw_defects


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(path, (np.squeeze(array) * 255).round().astype(np.uint8), check_contrast=False)


def _labelled(rng, image_path, mask_path):
    image, mask = draw_defects(checkerboard(64, square=16, angle=10.0, phase=tuple(rng.uniform(0, 2, 2))), rng)
    _save(image_path, image)
    _save(mask_path, mask.astype(np.float32))


def test_nanotwice_given_whole_is_refused_with_the_options_that_pair_its_masks(tmp_path):
    # a tester's: its gt/ITIA1101_gt.png were scored as defect-free images, and so were the defective images
    rng = np.random.default_rng(0)
    for stem in ("ITIA1101", "ITIA1102"):
        _labelled(rng, tmp_path / "Anomalous" / "images" / f"{stem}.tif",
                  tmp_path / "Anomalous" / "gt" / f"{stem}_gt.png")
    _save(tmp_path / "Normal" / "ITIA1141.tif", checkerboard(64, square=16, angle=10.0))
    expected = (f"{tmp_path}/Anomalous/gt/ITIA1101_gt.png (and 1 more): named and looking like the mask of "
                f"{tmp_path}/Anomalous/images/ITIA1101.tif, but in another folder, where it is no image's mask, so "
                f"ITIA1101.tif would count as defect-free; give the images' folders with the masks' folder as "
                f"--masks: {tmp_path}/Anomalous/images {tmp_path}/Normal --masks {tmp_path}/Anomalous/gt "
                "--mask-suffix _gt.png (or, if it is an image, the ending of the masks beside the images as "
                "--mask-suffix); nothing was scored")
    with pytest.raises(DatasetError, match=f"^{re.escape(expected)}$"):
        find_labelled([tmp_path])
    items, bad, _ = find_labelled([tmp_path / "Anomalous" / "images", tmp_path / "Normal"],
                                  masks=tmp_path / "Anomalous" / "gt", mask_suffix="_gt.png")
    assert {item.key: item.mask and item.mask.name for item in items} == {
        "Anomalous/images/ITIA1101": "ITIA1101_gt.png", "Anomalous/images/ITIA1102": "ITIA1102_gt.png",
        "Normal/ITIA1141": None} and not bad


def test_an_mvtec_categorys_test_and_ground_truth_given_together_are_refused(tmp_path):
    # a tester's: with good/ sorting before the defect type, the hint named test/good and ground_truth/scratch
    rng = np.random.default_rng(1)
    _labelled(rng, tmp_path / "test" / "scratch" / "000.png", tmp_path / "ground_truth" / "scratch" / "000_mask.png")
    _save(tmp_path / "test" / "good" / "000.png", checkerboard(64, square=16, angle=10.0))
    with pytest.raises(DatasetError, match=re.escape(f"the mask of {tmp_path}/test/scratch/000.png, ") + ".*"
                       + re.escape(f"--masks: {tmp_path}/test --masks {tmp_path}/ground_truth --mask-suffix _mask.png "
                                   "(or")):
        find_labelled([tmp_path / "test", tmp_path / "ground_truth"])
    items, bad, _ = find_labelled([tmp_path / "test"], masks=tmp_path / "ground_truth", mask_suffix="_mask.png")
    assert {item.key: item.mask and item.mask.name for item in items} == {"good/000": None,
                                                                          "scratch/000": "000_mask.png"}


def test_an_image_that_has_its_mask_beside_it_brings_no_refusal(tmp_path):
    # a tester's: good/0001_ref.png, nearly two-valued, was taken for the mask of scratch/0001.png, which has one
    rng = np.random.default_rng(3)
    _labelled(rng, tmp_path / "scratch" / "0001.png", tmp_path / "scratch" / "0001_mask.png")
    _save(tmp_path / "good" / "0001_ref.png", checkerboard(64, square=16, angle=30.0))
    items, bad, _ = find_labelled([tmp_path])
    assert {item.key: item.mask and item.mask.name for item in items} == {"good/0001_ref": None,
                                                                          "scratch/0001": "0001_mask.png"}


def test_an_image_named_like_another_in_another_folder_is_no_mask_unless_it_looks_like_its_mask(tmp_path):
    rng = np.random.default_rng(2)
    board = checkerboard(64, square=16, angle=10.0)
    _save(tmp_path / "photos" / "a.png", board)
    _save(tmp_path / "small" / "a_small.png", board[::2, ::2])  # two-valued, but of another size
    _save(tmp_path / "edits" / "a_edit.png", rng.random((64, 64)))  # its size, but no mask
    items, bad, rule = find_labelled([tmp_path])
    assert sorted(item.key for item in items) == ["edits/a_edit", "photos/a", "small/a_small"] and not bad
    assert rule.endswith("so all 3 images count as defect-free")


@pytest.mark.parametrize("good", ["Normal", "OK", "defect-free"])
def test_an_image_without_a_mask_beside_a_folder_of_defect_free_images_is_left_out(tmp_path, good):
    # a tester's: Normal/ + Anomalous/ (NanoTWICE's names), an unlabelled defective image was counted defect-free
    rng = np.random.default_rng(4)
    _labelled(rng, tmp_path / "Anomalous" / "a.png", tmp_path / "Anomalous" / "a_mask.png")
    _save(tmp_path / "Anomalous" / "b.png", checkerboard(64, square=16, angle=20.0))
    _save(tmp_path / good / "c.png", checkerboard(64, square=16, angle=40.0))
    items, bad, _ = find_labelled([tmp_path])
    assert {item.key: item.mask and item.mask.name for item in items} == {"Anomalous/a": "a_mask.png",
                                                                          f"{good}/c": None}
    assert bad == [(tmp_path / "Anomalous" / "b.png", f"lies in a defect type's folder (Anomalous/, beside {good}/) "
                    "but has no mask: left out, not counted defect-free")]


def test_a_name_so_typed_and_a_latin_1_name_that_escape_alike_get_outputs_of_their_own(tmp_path):
    # a tester's: caf\xe9.tif (so named) beside a Latin-1 café.tif shared one map, and the rerun read it for both
    import os

    from ssimlib.apps.file_names import output_path
    from ssimlib.apps.own_detection import output_names

    board = checkerboard(64, square=16, angle=10.0)
    files = [tmp_path / "good" / "caf\\xe9.tif", tmp_path / "good" / os.fsdecode(b"caf\xe9.tif")]
    for path in files:
        _save(path, board)
    items, _, _ = find_labelled([tmp_path])
    assert len(items) == 2 and len({output_path(item.key) for item in items}) == 2
    maps = [m for m, _ in output_names(files)]
    assert len(set(maps)) == 2 and all(m.name.startswith("caf\\xe9") for m in maps), maps


def test_masks_of_the_images_stems_in_a_folder_of_their_own_are_pointed_to(tmp_path):
    # a tester's: images/X.tif beside masks/X.png, given whole, scored the masks as images, with no word of --masks
    rng = np.random.default_rng(5)
    _labelled(rng, tmp_path / "defect" / "images" / "X.tif", tmp_path / "defect" / "masks" / "X.png")
    _save(tmp_path / "good" / "Y.png", checkerboard(64, square=16, angle=20.0))
    _, _, rule = find_labelled([tmp_path])
    assert rule.endswith(f"so all 3 images count as defect-free; {tmp_path}/defect/masks/X.png looks like the mask of "
                         f"{tmp_path}/defect/images/X.tif: if the masks lie there, give {tmp_path}/defect/images "
                         f"{tmp_path}/good --masks {tmp_path}/defect/masks"), rule
    items, bad, _ = find_labelled([tmp_path / "defect" / "images", tmp_path / "good"],
                                  masks=tmp_path / "defect" / "masks")
    assert {item.key: item.mask and item.mask.name for item in items} == {"defect/images/X": "X.png", "good/Y": None}

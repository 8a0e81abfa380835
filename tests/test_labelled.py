"""Pairing images with masks (:mod:`ssimlib.apps.labelled`): masks in a folder of their own given as images."""

import os
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
                f"ITIA1101.tif would have no mask (and count as defect-free, or be left out in a defect type's "
                "folder); give the images' folders with the masks' folder as "
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


def test_an_mvtec_category_whose_masks_are_named_like_their_images_is_refused_with_the_suffix(tmp_path):
    # a tester's: ground_truth/scratch/000.png was called "a mask without an image" (test/scratch/000.png is there),
    # the defective images were left out and the good ones scored, without a hint
    rng = np.random.default_rng(1)
    _labelled(rng, tmp_path / "test" / "scratch" / "000.png", tmp_path / "ground_truth" / "scratch" / "000.png")
    _save(tmp_path / "test" / "good" / "000.png", checkerboard(64, square=16, angle=10.0))
    with pytest.raises(DatasetError) as refused:
        find_labelled([tmp_path])
    assert str(refused.value) == (f"{tmp_path}/ground_truth: no mask there is named <stem>_mask.png (MVTec AD's "
                                  f"names) for an image of {tmp_path}/test, but masks are named <stem>.png: give "
                                  "--mask-suffix .png; nothing was scored")
    items, bad, _ = find_labelled([tmp_path], mask_suffix=".png")
    assert {item.key: item.mask and item.mask.name for item in items} == {"good/000": None, "scratch/000": "000.png"}


def test_an_mvtec_category_with_some_masks_named_like_their_images_names_them_beside_the_missing_mask(tmp_path):
    # a tester's: with 000_mask.png and 001.png in ground_truth/scratch, test/scratch/001.png was left out, "expected
    # its mask .../001_mask.png", without a word of the 001.png beside where it looked
    rng = np.random.default_rng(2)
    _labelled(rng, tmp_path / "test" / "scratch" / "000.png", tmp_path / "ground_truth" / "scratch" / "000_mask.png")
    _labelled(rng, tmp_path / "test" / "scratch" / "001.png", tmp_path / "ground_truth" / "scratch" / "001.png")
    _labelled(rng, tmp_path / "test" / "scratch" / "002.png", tmp_path / "ground_truth" / "scratch" / "002_gt.png")
    _labelled(rng, tmp_path / "test" / "scratch" / "003.png", tmp_path / "ground_truth" / "scratch" / "003_mask.tif")
    items, bad, _ = find_labelled([tmp_path])
    assert [item.key for item in items] == ["scratch/000"]
    problems = dict(bad)
    for stem, lying, ending, how in (("001", "001.png", ".png", "rename"), ("002", "002_gt.png", "_gt.png", "rename"),
                                     ("003", "003_mask.tif", "_mask.tif", "save")):  # a TIFF is not renamed to .png
        assert problems[tmp_path / "test" / "scratch" / f"{stem}.png"] == (
            f"expected its mask {tmp_path}/ground_truth/scratch/{stem}_mask.png, it does not exist ({lying} lies "
            f"there: a mask misnamed? {how} it as {stem}_mask.png, or give --mask-suffix {ending} if every mask is "
            "named so)")


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
    # defect/ lies beside good/: its images without a mask would be left out, the masks too (refused since a tester
    # found such masks scored as defect-free images where another image had its mask beside it)
    with pytest.raises(DatasetError, match="^" + re.escape(
            f"{tmp_path}/defect/masks/X.png: named and looking like the mask of {tmp_path}/defect/images/X.tif, but "
            "in another folder, where it is no image's mask, so X.tif would be left out (it lies in a defect type's "
            f"folder, without a mask); give the images' folders with the masks' folder as --masks: {tmp_path}/defect/"
            f"images {tmp_path}/good --masks {tmp_path}/defect/masks --mask-suffix .png (or")):
        find_labelled([tmp_path])
    _labelled(rng, tmp_path / "other" / "images" / "Z.tif", tmp_path / "other" / "masks" / "Z.png")
    _, bad, rule = find_labelled([tmp_path / "other"])  # beside no folder of defect-free images: pointed to
    assert rule.endswith(f"so all 2 images count as defect-free; {tmp_path}/other/masks/Z.png looks like the mask of "
                         f"{tmp_path}/other/images/Z.tif: if the masks lie there, give {tmp_path}/other/images "
                         f"--masks {tmp_path}/other/masks"), rule
    items, bad, _ = find_labelled([tmp_path / "defect" / "images", tmp_path / "good"],
                                  masks=tmp_path / "defect" / "masks")
    assert {item.key: item.mask and item.mask.name for item in items} == {"defect/images/X": "X.png", "good/Y": None}


def _noise(rng, path, defect=False):
    """A textured 64 px image; with ``defect``, a bright 16 px square, and its mask beside it at ``<stem>_mask.png``
    (returned)."""
    image = rng.uniform(0.25, 0.7, (64, 64))
    if defect:
        image[20:36, 20:36] = 1.0
        mask = np.zeros((64, 64))
        mask[20:36, 20:36] = 1.0
        _save(path.with_name(path.stem + "_mask.png"), mask)
    _save(path, image)


@pytest.mark.parametrize("given", [["good", "scratch"], ["good/g0.png", "scratch/d0.png", "scratch/d1.png"],
                                   ["."]])
def test_a_defect_types_image_without_a_mask_is_left_out_however_its_folder_is_given(tmp_path, given):
    # a tester's: `evaluate M d/good d/scratch` (or d/*/*.png) counted scratch/d1.png, maskless, defect-free
    rng = np.random.default_rng(2)
    _noise(rng, tmp_path / "good" / "g0.png")
    _noise(rng, tmp_path / "scratch" / "d0.png", defect=True)
    _noise(rng, tmp_path / "scratch" / "d1.png")
    items, bad, _ = find_labelled([tmp_path / name for name in given])
    assert sorted(item.path.name for item in items) == ["d0.png", "g0.png"]
    assert bad == [(tmp_path / "scratch" / "d1.png", "lies in a defect type's folder (scratch/, beside good/) but "
                    "has no mask: left out, not counted defect-free")]
    assert {item.path.name: item.in_defect_folder for item in items} == {"d0.png": True, "g0.png": False}
    # the defect type's folder given alone, its good sibling not: its maskless images count defect-free, as before,
    # with a warning
    with pytest.warns(UserWarning, match=re.escape(f"{tmp_path / 'scratch'}: 1 of its 2 images has no mask and "
                                                   "counts as defect-free, though it lies beside good/")):
        items, bad, _ = find_labelled([tmp_path / "scratch"])
    assert sorted(item.path.name for item in items) == ["d0.png", "d1.png"] and not bad
    # a tester's: its count took in files left out later (an image and its misnamed mask: "2 of its 3 images")
    _noise(rng, tmp_path / "scratch" / "d2.png", defect=True)
    (tmp_path / "scratch" / "d2_mask.png").rename(tmp_path / "scratch" / "d2_gt.png")
    with pytest.warns(UserWarning, match=re.escape(f"{tmp_path / 'scratch'}: 1 of its 2 images has no mask")):
        items, bad, _ = find_labelled([tmp_path / "scratch"])
    assert sorted(item.path.name for item in items) == ["d0.png", "d1.png"]
    assert sorted(path.name for path, _ in bad) == ["d2.png", "d2_gt.png"]


def test_a_folder_beside_a_good_folder_without_images_is_not_warned_of(tmp_path):
    # a tester's: any folder of some masked images beside an unrelated (here empty) good/ was warned of as a defect
    # type given alone
    import warnings

    rng = np.random.default_rng(5)
    (tmp_path / "good").mkdir()
    _noise(rng, tmp_path / "set" / "d0.png", defect=True)
    _noise(rng, tmp_path / "set" / "d1.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        items, bad, _ = find_labelled([tmp_path / "set"])
    assert sorted(item.key for item in items) == ["d0", "d1"] and not bad
    _noise(rng, tmp_path / "good" / "g0.png")  # now a folder of defect-free images: set/ may be a defect type
    with pytest.warns(UserWarning, match="1 of its 2 images has no mask and counts as defect-free"):
        find_labelled([tmp_path / "set"])


def test_a_defect_type_below_a_folder_beside_the_good_one_is_one_too(tmp_path):
    # a tester's: OK/ beside NG/dent/ (a plant's layout) counted NG/dent/d1.png, maskless, defect-free
    rng = np.random.default_rng(3)
    _noise(rng, tmp_path / "OK" / "g0.png")
    _noise(rng, tmp_path / "NG" / "dent" / "d0.png", defect=True)
    _noise(rng, tmp_path / "NG" / "dent" / "d1.png")
    _noise(rng, tmp_path / "OK" / "sub" / "g1.png")  # below the good folder: defect-free
    items, bad, _ = find_labelled([tmp_path])
    assert sorted(item.key for item in items) == ["NG/dent/d0", "OK/g0", "OK/sub/g1"]
    assert bad == [(tmp_path / "NG" / "dent" / "d1.png", "lies in a defect type's folder (dent/ in NG/, beside OK/) "
                    "but has no mask: left out, not counted defect-free")]


def test_a_defect_types_folder_reached_by_a_link_is_one_where_the_link_lies(tmp_path):
    # a tester's: set/scratch -> ../elsewhere/scr was judged where it points (no good/ beside it), so its maskless
    # d1.png counted defect-free, silently
    rng = np.random.default_rng(6)
    _noise(rng, tmp_path / "set" / "good" / "g0.png")
    _noise(rng, tmp_path / "elsewhere" / "scr" / "d0.png", defect=True)
    _noise(rng, tmp_path / "elsewhere" / "scr" / "d1.png")
    (tmp_path / "set" / "scratch").symlink_to(tmp_path / "elsewhere" / "scr")
    items, bad, _ = find_labelled([tmp_path / "set"])
    assert sorted(item.key for item in items) == ["good/g0", "scratch/d0"]
    assert bad == [(tmp_path / "set" / "scratch" / "d1.png", "lies in a defect type's folder (scratch/, beside "
                    "good/) but has no mask: left out, not counted defect-free")]


@pytest.mark.parametrize("link", ["latest", "a_latest"])  # before good/ in the walk's order, or after
def test_images_reached_by_a_link_too_are_taken_where_they_lie_without_one(tmp_path, link):
    # a second tester's: a link latest -> good beside good/ made good's images maskless images of a defect type
    # "latest/", left out, or not, as the file system ordered the folders; a link up the tree walked all above it
    rng = np.random.default_rng(12)
    for stem in ("g0", "g1"):
        _noise(rng, tmp_path / "set" / "good" / f"{stem}.png")
    _noise(rng, tmp_path / "set" / "scratch" / "s0.png", defect=True)
    _noise(rng, tmp_path / "set" / "scratch" / "s1.png")  # maskless: left out, though good/linked.png reaches it
    (tmp_path / "set" / link).symlink_to("good")
    (tmp_path / "set" / "good" / "linked.png").symlink_to(tmp_path / "set" / "scratch" / "s1.png")
    (tmp_path / "set" / "scratch" / "up").symlink_to(tmp_path)
    with pytest.warns(UserWarning, match=re.escape(f"{tmp_path}/set/scratch/up: a link to {tmp_path}, which holds "
                                                   "the input folder, not searched")):
        items, bad, _ = find_labelled([tmp_path / "set"])
    assert sorted(item.key for item in items) == ["good/g0", "good/g1", "scratch/s0"]
    assert [p for p, _ in bad] == [tmp_path / "set" / "scratch" / "s1.png"]


@pytest.mark.parametrize("defective", ["defective", "NG", "Bad"])
def test_a_folder_named_as_one_of_defective_images_is_a_defect_types(tmp_path, defective):
    # a tester's: pass/ + defective/ (names outside the list of defect-free folders) counted a maskless image in
    # defective/ defect-free, silently
    rng = np.random.default_rng(7)
    _noise(rng, tmp_path / "lot" / "pass" / "g0.png")
    _noise(rng, tmp_path / "lot" / defective / "d0.png", defect=True)
    _noise(rng, tmp_path / "lot" / defective / "d1.png")
    expected = [(tmp_path / "lot" / defective / "d1.png", f"lies in a defect type's folder ({defective}/, beside "
                 "pass/) but has no mask: left out, not counted defect-free")]
    assert find_labelled([tmp_path / "lot"])[1] == expected  # pass/ is a folder of defect-free images
    (tmp_path / "lot" / "pass").rename(tmp_path / "lot" / "lot7")
    items, bad, _ = find_labelled([tmp_path / "lot"])  # no good folder beside it: its name alone
    assert sorted(item.key for item in items) == [f"{defective}/d0", "lot7/g0"]
    assert bad == [(expected[0][0], f"lies in a defect type's folder ({defective}/, named as one of defective "
                    "images) but has no mask: left out, not counted defect-free")]
    assert find_labelled([tmp_path / "lot" / defective])[1] == bad  # given itself
    # a folder so named above the folder given is the user's, not a defect type's
    items, bad, _ = find_labelled([tmp_path / "lot" / "lot7"])
    assert [item.key for item in items] == ["g0"] and not bad
    (tmp_path / "lot").rename(tmp_path / "bad")
    items, bad, _ = find_labelled([tmp_path / "bad" / "lot7"])
    assert [item.key for item in items] == ["g0"] and not bad


def test_masks_in_a_folder_of_their_own_beside_images_paired_otherwise_are_refused(tmp_path):
    # a tester's: with one image paired beside its mask, masks/bad/b0.png and b1.png were scored as defect-free
    # images (their images left out), no line naming them
    rng = np.random.default_rng(8)
    _noise(rng, tmp_path / "images" / "good" / "n0.png")
    for stem in ("b0", "b1", "b3"):
        _noise(rng, tmp_path / "images" / "bad" / f"{stem}.png", defect=True)
    (tmp_path / "masks" / "bad").mkdir(parents=True)
    for stem in ("b0", "b1"):
        os.replace(tmp_path / "images" / "bad" / f"{stem}_mask.png", tmp_path / "masks" / "bad" / f"{stem}.png")
    with pytest.raises(DatasetError, match="^" + re.escape(
            f"{tmp_path}/masks/bad/b0.png (and 1 more): named and looking like the mask of {tmp_path}/images/bad/"
            "b0.png, but in another folder, where it is no image's mask, so b0.png would be left out (it lies in a "
            "defect type's folder, without a mask); give the images' folders with the masks' folder as --masks: "
            f"{tmp_path}/images --masks {tmp_path}/masks --mask-suffix .png")):
        find_labelled([tmp_path])


def test_two_valued_images_of_one_stem_in_good_and_in_a_defect_type_are_no_masks_of_each_other(tmp_path):
    # a second tester's: good/b0.png, two-valued, was taken for the mask of bad/b0.png (which had none) and the run
    # refused, whatever was given
    rng = np.random.default_rng(11)
    for folder in ("good", "bad"):
        for stem in ("b0", "b1"):
            _save(tmp_path / folder / f"{stem}.png", rng.random((64, 64)) > 0.5)
    _save(tmp_path / "bad" / "b1_mask.png", np.pad(np.ones((8, 8)), 28))
    items, bad, _ = find_labelled([tmp_path])
    assert sorted(item.key for item in items) == ["bad/b1", "good/b0", "good/b1"]
    assert [p for p, _ in bad] == [tmp_path / "bad" / "b0.png"]


def test_a_mask_suffix_that_is_the_images_own_ending_is_refused_in_one_line(tmp_path):
    # a tester's: --mask-suffix .png took every image for a mask without an image, one line each, nothing said why
    rng = np.random.default_rng(9)
    _noise(rng, tmp_path / "good" / "g0.png")
    _noise(rng, tmp_path / "scratch" / "d0.png", defect=True)
    with pytest.raises(DatasetError, match="^" + re.escape(
            "--mask-suffix .png: 3 files end in it (") + ".*" + re.escape(
            "), but no image <stem>.* lies beside one named <stem>.png, so no mask fits an image; the suffix is what "
            "a mask's name adds to its image's stem (_mask.png for a_mask.png beside a.png), not the images' own "
            "ending; nothing was scored") + "$"):
        find_labelled([tmp_path], mask_suffix=".png")
    with pytest.raises(DatasetError, match="^--mask-suffix .png: 1 file ends in it"):  # only defect-free images
        find_labelled([tmp_path / "good"], mask_suffix=".png")
    with pytest.raises(DatasetError, match=re.escape("(did you mean --mask-suffix _mask.png?)") + "$"):
        find_labelled([tmp_path], mask_suffix="mask.png")
    assert len(find_labelled([tmp_path], mask_suffix="_mask.png")[0]) == 2


def test_an_output_folder_given_as_input_is_told_as_one(tmp_path):
    # a tester's: `evaluate M CO2` after `detect M CO2 --out CO2` said "folder holds no images" beside its images
    _noise(np.random.default_rng(10), tmp_path / "CO2" / "n0.png")
    (tmp_path / "CO2" / "detections.run.json").write_text("{}")
    with pytest.warns(UserWarning, match="a detect run's output"):
        items, bad, _ = find_labelled([tmp_path / "CO2"])
    assert not items and bad == [(tmp_path / "CO2", "folder holds no images to score: it is a detect run's output "
                                  "(detections.run.json), whose images are not searched (give the images' own "
                                  "folder)")]


def test_a_two_valued_png_beside_a_photo_of_a_bright_defect_is_its_mask(tmp_path):
    # a tester's: the mask of a bright stain on a smooth part correlates with it above 0.9 and was taken for a copy
    rng = np.random.default_rng(4)
    image = 0.4 + rng.normal(0, 0.02, (96, 96))
    image[30:66, 30:66] = 1.0
    mask = np.zeros((96, 96))
    mask[30:66, 30:66] = 1.0
    assert np.corrcoef(image.ravel(), mask.ravel())[0, 1] > 0.9
    _save(tmp_path / "d1.jpg", image)
    _save(tmp_path / "d1.png", mask)
    _save(tmp_path / "d2.jpg", mask)  # a two-valued image and its copy: both images, as before
    _save(tmp_path / "d2.png", mask)
    items, bad, _ = find_labelled([tmp_path])
    assert {item.key: item.mask and item.mask.name for item in items} == {"d1": "d1.png", "d2": None,
                                                                          "d2.png": None}


@pytest.mark.parametrize("stem", ["d0", "000"])
def test_masks_with_an_ending_of_their_own_beside_the_images_are_hinted_at(tmp_path, stem):
    # "000": a tester's; MVTec-like stems, good/000.png beside scratch/000.png and scratch/000_gt.png, was refused
    # as a mask of good/000.png "in another folder", and the options it gave paired good/000.png with it. A hint,
    # not a refusal: a second tester's two-valued images (a checkerboard beside a photo) look like masks too.
    rng = np.random.default_rng(5)
    _noise(rng, tmp_path / "good" / f"{stem}.png")
    _noise(rng, tmp_path / "scratch" / f"{stem}.png", defect=True)
    (tmp_path / "scratch" / f"{stem}_mask.png").rename(tmp_path / "scratch" / f"{stem}_gt.png")
    _, _, rule = find_labelled([tmp_path])
    assert rule.endswith(f"; {tmp_path}/scratch/{stem}_gt.png looks like the mask of {stem}.png beside it: if the "
                         "masks are so named, give --mask-suffix _gt.png")
    items, bad, _ = find_labelled([tmp_path], mask_suffix="_gt.png")
    assert {item.key: item.mask and item.mask.name for item in items} == {f"good/{stem}": None,
                                                                          f"scratch/{stem}": f"{stem}_gt.png"}


def test_a_mask_of_another_type_than_the_png_image_beside_it_is_hinted_at(tmp_path):
    # a tester's: d0.png with its mask d0.tif beside it scored both as defect-free images, without a hint
    rng = np.random.default_rng(5)
    _noise(rng, tmp_path / "d0.png", defect=True)
    mask = skimage.io.imread(tmp_path / "d0_mask.png")
    (tmp_path / "d0_mask.png").unlink()
    skimage.io.imsave(tmp_path / "d0.tif", mask, check_contrast=False)
    _noise(rng, tmp_path / "g1.png")
    _, _, rule = find_labelled([tmp_path])
    assert rule.endswith(f"; {tmp_path}/d0.tif looks like the mask of d0.png beside it: if the masks are so named, "
                         "give --mask-suffix .tif")
    items, _, _ = find_labelled([tmp_path], mask_suffix=".tif")
    assert {item.key: item.mask and item.mask.name for item in items} == {"d0": "d0.tif", "g1": None}


def test_a_folder_that_cannot_be_read_is_warned_of(tmp_path, monkeypatch):
    # a tester's reading: os.walk skipped a folder without read permission without a word
    rng = np.random.default_rng(6)
    _noise(rng, tmp_path / "good" / "g0.png")
    walk = os.walk

    def walk_failing_below(top, **kwargs):
        kwargs["onerror"](PermissionError(13, "Permission denied", str(tmp_path / "locked")))
        return walk(top, **kwargs)

    monkeypatch.setattr(os, "walk", walk_failing_below)
    with pytest.warns(UserWarning, match=re.escape(f"{tmp_path / 'locked'}: cannot be read (Permission denied), not "
                                                   "searched: its images are left out")):
        items, _, _ = find_labelled([tmp_path])
    assert [item.key for item in items] == ["good/g0"]


def test_a_mask_named_otherwise_than_the_masks_found_beside_it_is_left_out_with_its_image(tmp_path):
    # a tester's: with c_mask.png found for c.png, b_gt.png was scored as a defect-free image, and b.png (defective)
    # as one too, exit status 0
    rng = np.random.default_rng(4)
    _save(tmp_path / "a.png", checkerboard(64, square=16, angle=10.0, phase=(0.3, 0.7)))
    _labelled(rng, tmp_path / "b.png", tmp_path / "b_gt.png")
    _labelled(rng, tmp_path / "c.png", tmp_path / "c_mask.png")
    items, bad, rule = find_labelled([tmp_path])
    assert {item.key: item.mask and item.mask.name for item in items} == {"a": None, "c": "c_mask.png"}
    assert dict(bad) == {
        tmp_path / "b_gt.png": "looks like the mask of b.png beside it, but is not named b_mask.* as the other masks "
                               "are: left out with its image (rename it, or give --mask-suffix _gt.png if every mask "
                               "is so named)",
        tmp_path / "b.png": "its mask looks to be b_gt.png beside it, not named b_mask.*: left out"}
    assert rule.endswith("1 of 2 images has one, the others count as defect-free; 2 other files left out (named "
                         "below)")


def test_an_image_named_like_a_mask_pairs_with_its_own_mask(tmp_path):
    # a tester's: crack/wafer-mask.png with its mask wafer-mask_mask.png were both left out as masks without images
    rng = np.random.default_rng(5)
    _labelled(rng, tmp_path / "crack" / "wafer-mask.png", tmp_path / "crack" / "wafer-mask_mask.png")
    _labelled(rng, tmp_path / "crack" / "x.png", tmp_path / "crack" / "x_mask.png")
    _save(tmp_path / "good" / "g.png", checkerboard(64, square=16, angle=10.0, phase=(0.1, 0.2)))
    _save(tmp_path / "good" / "wafer-mask.png", checkerboard(64, square=16, angle=10.0, phase=(0.5, 0.2)))
    items, bad, _ = find_labelled([tmp_path])
    assert {item.key: item.mask and item.mask.name for item in items} == {
        "crack/wafer-mask": "wafer-mask_mask.png", "crack/x": "x_mask.png", "good/g": None}
    # alone, a file so named may be a mask that lost its image: left out and named, --mask-suffix or not (a second
    # tester's: with --mask-suffix _gt.png, d0_mask.png was scored as a defect-free image)
    lone = {tmp_path / "good" / "wafer-mask.png": "a mask without an image (named like a mask, and no image pairs "
                                                  "with it): left out, not scored (an image so named? rename it; see "
                                                  "--masks, --mask-suffix)"}
    assert dict(bad) == lone
    items, bad, _ = find_labelled([tmp_path], mask_suffix="_mask.png")
    assert len(items) == 3 and dict(bad) == lone


def test_a_version_of_an_image_beside_it_is_no_misnamed_mask(tmp_path):
    # a second tester's: two binarized scans, scan-1.png and scan-1_2.png, beside masks named <stem>_mask.png, were
    # left out as an image and its misnamed mask
    rng = np.random.default_rng(6)
    _labelled(rng, tmp_path / "c.png", tmp_path / "c_mask.png")
    board = checkerboard(64, square=16, angle=10.0, phase=(0.3, 0.7)) > 0.5
    _save(tmp_path / "scan-1.png", board.astype(np.float32))
    _save(tmp_path / "scan-1_2.png", np.roll(board, 5, axis=1).astype(np.float32))
    items, bad, _ = find_labelled([tmp_path])
    assert {item.key: item.mask and item.mask.name for item in items} == {
        "c": "c_mask.png", "scan-1": None, "scan-1_2": None} and bad == []


def test_two_links_to_one_image_are_taken_once_and_the_other_name_is_said(tmp_path):
    # a tester's: good/g0.png and good/copy.png, links to one file, gave one image and not a word of g0.png; which
    # name was kept followed the folder's listing order
    skimage.io.imsave(tmp_path / "real.png", np.zeros((8, 8), np.uint8), check_contrast=False)
    (tmp_path / "set" / "good").mkdir(parents=True)
    for name in ("g0.png", "copy.png"):
        os.symlink(tmp_path / "real.png", tmp_path / "set" / "good" / name)
    with pytest.warns(UserWarning) as said:
        items, bad, _ = find_labelled([tmp_path / "set"])
    assert [item.key for item in items] == ["good/copy"] and not bad
    assert [str(w.message) for w in said] == [
        f"{tmp_path}/set/good/g0.png: the same file as {tmp_path}/set/good/copy.png (a link): taken once, under that "
        "name"]

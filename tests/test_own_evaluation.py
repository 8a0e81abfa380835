"""`ssimlib evaluate` and the HTML report on a generated labelled set, checked against an independent computation."""

import contextlib
import csv
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.io
from PIL import Image
from scipy import ndimage
from scipy.stats import rankdata

from ssimlib.apps.cli import main
from ssimlib.apps.labelled import find_labelled
from ssimlib.data import DatasetError
from ssimlib.synthetic import checkerboard, draw_defects


def _board(rng, h, w):
    side = max(h, w)
    return checkerboard(side, square=16, angle=10.0, phase=tuple(rng.uniform(0, 2, 2)))[:h, :w]


def _save(path, array, bits=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    top = 2**bits - 1
    dtype = np.uint8 if bits == 8 else np.uint16
    skimage.io.imsave(path, (np.squeeze(array) * top).round().astype(dtype), check_contrast=False)


def write_labelled_set(root):
    """good/ and stroke/ folders: JPEG, PNG, BMP and 16-bit TIFF images of mixed sizes, PNG masks of the same stem.

    One defect-free image (24x20) is smaller than the 32 px patch.  Returns the folder.
    """
    rng = np.random.default_rng(1)
    folder = root / "labelled"
    _save(folder / "good" / "000.jpg", _board(rng, 64, 64))
    _save(folder / "good" / "001.png", _board(rng, 72, 80))
    _save(folder / "good" / "tiny.jpg", _board(rng, 20, 24))
    for name, (h, w), bits in (("000.jpg", (64, 64), 8), ("001.bmp", (80, 72), 8), ("002.tif", (64, 96), 16)):
        image, mask = draw_defects(_board(rng, h, w), rng)
        _save(folder / "stroke" / name, image, bits)
        _save(folder / "stroke" / name.replace(name[-4:], ".png"), mask.astype(np.float32))
    return folder


@pytest.fixture(scope="module")
def model(tiny_model):
    """The stem of the tiny model of ``ssimlib train`` (conftest)."""
    return tiny_model[1]


@pytest.fixture(scope="module")
def evaluated(model, tmp_path_factory):
    """`ssimlib evaluate --report` on the labelled set:
    ``(labelled folder, out folder, exit status, stdout, stderr)``."""
    root = tmp_path_factory.mktemp("evaluated")
    labelled = write_labelled_set(root)
    out = root / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["evaluate", str(model), str(labelled), "--out", str(out), "--report"])
    return labelled, out, code, stdout.getvalue(), stderr.getvalue()


def mann_whitney_auc(scores, labels):
    """AUROC as the Mann-Whitney U statistic over n_pos n_neg (ties count half, through mid-ranks)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, bool)
    ranks = rankdata(scores)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return (ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_evaluate_metrics_match_an_independent_computation(evaluated, model):
    labelled, out, code, stdout, stderr = evaluated
    assert code == 0, stderr
    assert "a PNG of the same stem as an image of another type for 3" in stdout and "3 of 6 images have one" in stdout
    assert stderr.count("\n") == 1 and "tiny.jpg: image is 24x20, smaller than the 32x32 patch: padded" in stderr
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "evaluation.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 6 and {row["kind"] for row in rows} == {"good", "stroke"}
    maps, masks = [], []
    for row in rows:
        maps.append(skimage.io.imread(out / "images" / f"{row['key']}_map.tif").astype(np.float64))
        masks.append(skimage.io.imread(row["mask"]) > 127 if row["mask"] else np.zeros(maps[-1].shape, bool))
    assert maps[[r["key"] for r in rows].index("good/tiny")].shape == (20, 24)  # padded, then cropped back
    pixels = np.concatenate([m.ravel() for m in maps])
    truth = np.concatenate([m.ravel() for m in masks])
    assert metrics["pixel_auroc"] == pytest.approx(mann_whitney_auc(pixels, truth), abs=1e-9)
    labels = np.array([m.any() for m in masks])
    assert metrics["image_auroc"] == pytest.approx(mann_whitney_auc([m.max() for m in maps], labels), abs=1e-9)
    threshold = json.loads(model.with_name("parts.json").read_text())["detection"]["threshold"]
    assert metrics["threshold"] == threshold and metrics["threshold_from"] == "validation"
    eight = np.ones((3, 3))
    found = np.array([np.bincount(ndimage.label(m > threshold, eight)[0].ravel())[1:].max(initial=0) >= 16
                      for m in maps])
    assert metrics["defect_free_correct"] == pytest.approx(np.mean(~found[~labels]))
    assert metrics["defective_correct"] == pytest.approx(np.mean(found[labels]))
    assert [row["verdict"] == "defective" for row in rows] == list(found)
    assert metrics["images"] == {"scored": 6, "defect_free": 3, "defective": 3}
    assert metrics["pixels"] == {"total": truth.size, "defect": int(truth.sum()), "defect_free": int((~truth).sum())}
    assert metrics["regions"] == sum(ndimage.label(m, eight)[1] for m in masks)
    assert 0 <= metrics["au_pro@0.3"] <= 1 and metrics["problems"] == []
    assert (out / "roc.png").stat().st_size > 0 and (out / "pro.png").stat().st_size > 0
    # operating points: pixel rates and the median share of each defect region above a threshold, the model's and
    # the lowest that leaves at most 1 % / 5 % of the defect-free pixels above it
    good_px, defect_px = pixels[~truth], pixels[truth]
    regions = [m[r] for m, mask in zip(maps, masks) for r in
               (ndimage.label(mask, eight)[0] == k for k in range(1, ndimage.label(mask, eight)[1] + 1))]
    points = metrics["operating_points"]
    for point in [points["at_threshold"], *points["at_pixel_fpr"]]:
        t = point["threshold"]
        assert point["pixel_fpr"] == pytest.approx(np.mean(good_px > t), abs=1e-12)
        assert point["pixel_tpr"] == pytest.approx(np.mean(defect_px > t), abs=1e-12)
        assert point["median_region_overlap"] == pytest.approx(np.median([np.mean(r > t) for r in regions]))
    assert points["at_threshold"]["threshold"] == threshold
    for fpr, point in zip((0.01, 0.05), points["at_pixel_fpr"]):
        t = point["threshold"]
        assert np.mean(good_px > t) <= fpr < np.mean(good_px >= t) and t in good_px.astype(np.float32)
    for fpr, point in zip((1, 5), points["at_pixel_fpr"]):  # the threshold as printed, typed back, keeps its FPR
        printed = float(stdout.split(f"for a pixel FPR of at most {fpr} %: --threshold ")[1].split(":")[0])
        assert np.float32(printed) == np.float32(point["threshold"]) and np.mean(good_px > printed) <= fpr / 100


def test_each_defect_type_is_scored_beside_every_defect_free_image(model, tmp_path, capsys):
    # an engineer with scratch/ and dent/ asks which type the model finds; MVTec AD's evaluations read a type so
    rng = np.random.default_rng(5)
    folder = tmp_path / "parts"
    for i in range(3):
        _save(folder / "good" / f"{i}.png", _board(rng, 64, 64))
    for kind, n in (("scratch", 2), ("dent", 3)):
        for i in range(n):
            image, mask = draw_defects(_board(rng, 64, 64), rng)
            _save(folder / kind / f"{i}.png", image)
            _save(tmp_path / "gt" / kind / f"{i}.png", mask.astype(np.float32))
    out = tmp_path / "out"
    assert main(["evaluate", str(model), str(folder), "--masks", str(tmp_path / "gt"), "--out", str(out),
                 "--report"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "evaluation.csv") as file:
        rows = list(csv.DictReader(file))
    maps = {row["key"]: skimage.io.imread(out / "images" / f"{row['key']}_map.tif").astype(np.float64)
            for row in rows}
    masks = {row["key"]: skimage.io.imread(row["mask"]) > 127 if row["mask"] else np.zeros((64, 64), bool)
             for row in rows}
    good = [k for k in maps if k.startswith("good/")]
    assert sorted(metrics["by_defect_type"]) == ["dent", "scratch"]
    for kind, n in (("scratch", 2), ("dent", 3)):
        keys = [k for k in maps if k.startswith(f"{kind}/")] + good
        got = metrics["by_defect_type"][kind]
        pixels = np.concatenate([maps[k].ravel() for k in keys])
        truth = np.concatenate([masks[k].ravel() for k in keys])
        assert got["pixel_auroc"] == pytest.approx(mann_whitney_auc(pixels, truth), abs=1e-9)
        labels = [masks[k].any() for k in keys]
        assert got["image_auroc"] == pytest.approx(mann_whitney_auc([maps[k].max() for k in keys], labels), abs=1e-9)
        verdicts = {row["key"]: row["verdict"] for row in rows}
        assert got["defective_correct"] == pytest.approx(np.mean([verdicts[k] == "defective" for k in keys[:n]]))
        assert (got["defective"], got["defect_free"]) == (n, 3) and 0 <= got["au_pro@0.3"] <= 1
        assert f"  defect type {kind} ({n} defective): pixel AUROC {got['pixel_auroc']:.3f}, AU-PRO@0.3" in printed
        assert f"defect type {kind} ({n} defective)" in (out / "report.html").read_text()
    # one folder of defects: the totals say it all, no breakdown
    shutil.rmtree(folder / "scratch")
    shutil.rmtree(tmp_path / "gt" / "scratch")
    assert main(["evaluate", str(model), str(folder), "--masks", str(tmp_path / "gt"), "--out", str(tmp_path / "one")]
                ) == 0
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["by_defect_type"] == {}


def test_an_image_3_or_4_px_high_is_scored_and_its_map_kept_gray(model, tmp_path, capsys):
    # a tester's: the map of a 4x4 image (3 or 4 rows) was taken for planar RGB ("not enough samples for
    # PHOTOMETRIC.RGB"), the image left out and its half-written map left behind
    rng = np.random.default_rng(2)
    folder = tmp_path / "parts"
    _save(folder / "good" / "0.png", _board(rng, 64, 64))
    _save(folder / "good" / "four.png", _board(rng, 4, 4))
    _save(folder / "good" / "three.png", _board(rng, 3, 50))
    image, mask = draw_defects(_board(rng, 64, 64), rng)
    _save(folder / "stroke" / "0.png", image)
    _save(folder / "stroke" / "0_mask.png", mask.astype(np.float32))
    assert main(["evaluate", str(model), str(folder), "--out", str(tmp_path / "out")]) == 0
    assert "Traceback" not in capsys.readouterr().err
    for key, shape in (("good/four", (4, 4)), ("good/three", (3, 50))):
        assert skimage.io.imread(tmp_path / "out" / "images" / f"{key}_map.tif").shape == shape
    with open(tmp_path / "out" / "evaluation.csv") as file:
        assert sorted(row["key"] for row in csv.DictReader(file)) == ["good/0", "good/four", "good/three", "stroke/0"]


def test_a_masks_folder_of_the_images_copies_is_refused(model, tmp_path, capsys):
    # a tester's: --masks naming a copy of the image folder paired each image with itself, read every bright pixel as
    # a defect and published the metrics, exit 0, the copies only warned of
    rng = np.random.default_rng(3)
    for kind in ("good", "dent"):
        for i in range(2):
            _save(tmp_path / "set" / kind / f"{i}.png", _board(rng, 64, 64))
    shutil.copytree(tmp_path / "set", tmp_path / "copy")
    assert main(["evaluate", str(model), str(tmp_path / "set"), "--masks", str(tmp_path / "copy"),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    copies = [f"error: {tmp_path}/copy/{key}.png: a copy of its image {tmp_path}/set/{key}.png (the same bytes), not "
              "a mask; left out" for key in ("dent/0", "dent/1", "good/0", "good/1")]
    assert err[-5:] == copies + ["error: no image could be scored"], err
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["pixel_auroc"] is None


def test_mask_layouts(tmp_path):
    def touch(*names):
        for name in names:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b"")

    touch("a/good/1.png", "a/bad/2.jpg", "gt/bad/2_m.png", "gt/bad/9_m.png")
    items, bad, rule = find_labelled([tmp_path / "a"], masks=tmp_path / "gt", mask_suffix="_m.png")
    assert [(i.key, i.kind, i.mask and i.mask.name) for i in items] == [("bad/2", "bad", "2_m.png"),
                                                                        ("good/1", "good", None)]
    assert bad == [(tmp_path / "gt/bad/9_m.png", "a mask without an image")] and "parallel folder" in rule
    # a tester's: images directly in the folder given named a <folder> in their masks' path that none had
    items, bad, rule = find_labelled([tmp_path / "a/bad"], masks=tmp_path / "gt/bad", mask_suffix="_m.png")
    assert rule == (f"masks: in the parallel folder {tmp_path / 'gt/bad'}/<stem>_m.png; the image has one; 1 other "
                    "file left out (named below)"), rule  # it said "1 of 1 images has one, the others count ..."
    touch("b/x.jpg", "b/x_mask.png", "b/y.jpg", "b/z_mask.png")
    items, bad, rule = find_labelled([tmp_path / "b"])
    assert [(i.key, i.mask and i.mask.name) for i in items] == [("x", "x_mask.png"), ("y", None)]
    assert bad[0][0].name == "z_mask.png" and "found automatically: <stem>_mask.* for 1" in rule and "1 of 2" in rule
    items, _, rule = find_labelled([tmp_path / "b"], mask_suffix="_mask.png")
    assert rule.startswith("masks: beside the images, <stem>_mask.png")
    touch("c/test/good/0.png", "c/test/cut/0.png", "c/ground_truth/cut/0_mask.png", "c/train/good/0.png")
    items, bad, rule = find_labelled([tmp_path / "c"])
    assert [(i.key, i.mask and i.mask.name) for i in items] == [("cut/0", "0_mask.png"), ("good/0", None)] and not bad
    assert rule.startswith("masks: an MVTec AD category")
    with pytest.raises(DatasetError, match="lies in the folder of masks"):
        find_labelled([tmp_path / "b"], masks=tmp_path / "b", mask_suffix="_mask.png")
    touch("f/b.jpg", "f/b.tif", "f/b_mask.png", "f/c.png", "f/c_mask.png", "f/c-mask.png")  # which mask is whose?
    items, bad, rule = find_labelled([tmp_path / "f"])
    assert items == [] and sorted(p.name for p, _ in bad) == ["b.*", "c.*"], bad
    assert "b.jpg, b.tif, b_mask.png: cannot tell which mask is whose" in dict((p.name, m) for p, m in bad)["b.*"]
    touch("d/0.png", "d/1.jpg")
    items, bad, rule = find_labelled([tmp_path / "d"])
    assert [i.mask for i in items] == [None, None] and not bad
    assert rule.startswith("masks: none found beside the images") and rule.endswith("all 2 images count as defect-free")


def test_masks_of_0_255_and_label_images_of_0_1_mark_the_same_pixels(tmp_path):
    from ssimlib.apps.labelled import Labelled, read_labelled_mask

    defect = np.zeros((8, 10), bool)
    defect[2:5, 3:7] = True
    classes = defect.astype(np.uint8)  # a label image of two defect classes, 1 and 2 (or 100 and 200)
    classes[2:5, 5:7] = 2
    shade = np.random.default_rng(0).random(defect.shape)
    soft = np.where(defect, 0.8 + 0.2 * shade, 0.3 * shade)  # many gray levels (soft edges): above one half
    cases = {"255.png": defect.astype(np.uint8) * 255, "01.png": defect.astype(np.uint8),
             "01_16bit.png": defect.astype(np.uint16), "0_40.png": defect.astype(np.uint8) * 40,
             "012.png": classes, "0_100_200.png": classes * 100, "soft.png": (soft * 255).round().astype(np.uint8),
             "255.jpg": defect.astype(np.uint8) * 255, "empty.png": np.zeros((8, 10), np.uint8)}
    for name, array in cases.items():
        skimage.io.imsave(tmp_path / name, array, check_contrast=False, **({"quality": 90} if "jpg" in name else {}))
        got = read_labelled_mask(Labelled(tmp_path / "image.png", tmp_path / name, "image", ""), (8, 10))
        expected = defect if name != "empty.png" else np.zeros_like(defect)
        np.testing.assert_array_equal(got, expected, err_msg=name)
    jpeg = skimage.io.imread(tmp_path / "255.jpg")
    assert np.unique(jpeg).size > 8 or np.array_equal(jpeg > 127, defect)  # a JPEG's noise is no defect


def test_a_mask_drawn_on_a_transparent_layer_marks_what_was_drawn(tmp_path):
    from ssimlib.data import read_mask

    defect = np.zeros((8, 10), bool)
    defect[2:5, 3:7] = True
    opaque = np.where(defect, 255, 0).astype(np.uint8)
    black = np.zeros_like(opaque)
    rng = np.random.default_rng(1)
    junk = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)  # what an editor leaves under transparent pixels
    white_on_clear = np.where(defect[..., None], 255, junk)
    white = np.full_like(opaque, 255)
    soft = np.where(defect, 255, rng.integers(0, 100, defect.shape)).astype(np.uint8)  # a soft brush's faint spray
    cases = {"alpha_only.png": np.dstack([black, black, black, opaque]),  # black paint, its alpha the defect
             "black_on_white_clear.png": np.dstack([np.where(defect, 0, 255).astype(np.uint8)[..., None].repeat(3, -1),
                                                    opaque]),  # white left under the transparent pixels
             "white_on_clear.png": np.dstack([white_on_clear, opaque]),
             "red_soft_brush.png": np.dstack([white, black, black, soft]),  # red paint, alpha 60 beside it
             "gray_alpha.png": np.dstack([white, opaque]),  # LA: white paint, alpha the defect
             "opaque_rgba.png": np.dstack([opaque, opaque, opaque, white]),
             "clear_rgba.png": np.dstack([opaque, opaque, opaque, black])}  # alpha 0 everywhere: the colour counts
    for name, array in cases.items():
        Image.fromarray(array, "LA" if array.shape[-1] == 2 else "RGBA").save(tmp_path / name)
        np.testing.assert_array_equal(read_mask(tmp_path / name, (8, 10)), defect, err_msg=name)
    palette = Image.fromarray(np.where(defect, 1, 0).astype(np.uint8), "P")  # entry 0 transparent white, 1 black
    palette.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    palette.save(tmp_path / "palette.png", transparency=0)
    np.testing.assert_array_equal(read_mask(tmp_path / "palette.png", (8, 10)), defect)


def test_bad_input_is_listed_and_the_rest_still_scored(model, tmp_path, capsys):
    rng = np.random.default_rng(2)
    folder = tmp_path / "set"
    for name, size in (("ok", 64), ("wrong_size", 64), ("broken", 64)):
        image, mask = draw_defects(_board(rng, size, size), rng)
        _save(folder / f"{name}.png", image)
        _save(folder / f"{name}_mask.png", mask.astype(np.float32))
    _save(folder / "good.png", _board(rng, 64, 64))
    _save(folder / "wrong_size_mask.png", np.zeros((48, 64)))
    (folder / "broken_mask.png").write_bytes(b"not a png")
    _save(folder / "orphan_mask.png", np.zeros((64, 64)))
    out = tmp_path / "out"
    assert main(["evaluate", str(model), str(folder), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 3, err
    assert any("wrong_size_mask.png: mask is 64x48 but its image" in line and "wrong_size.png is 64x64" in line
               and line.count("wrong_size.png") == 1 for line in err)  # the image named once, not twice
    # the rule's count is of the images found: two of them could not be scored
    assert "3 of 4 images have one" in captured.out and "; 2 of the 4 could not be scored (named below)" in captured.out
    assert any("broken_mask.png: could not read it" in line for line in err)
    assert any("orphan_mask.png: a mask without an image" in line for line in err)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == {"scored": 2, "defect_free": 1, "defective": 1} and len(metrics["problems"]) == 3
    assert metrics["pixel_auroc"] is not None
    # Defect-free images only: what can be computed is written, the rest is null.
    assert main(["evaluate", str(model), str(folder / "good.png"), "--out", str(tmp_path / "o2")]) == 2
    assert "no defective images" in capsys.readouterr().err
    metrics = json.loads((tmp_path / "o2" / "metrics.json").read_text())
    assert metrics["pixel_auroc"] is None and metrics["defect_free_correct"] is not None
    assert main(["evaluate", str(model), str(folder), "--masks", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "o3")]) == 2
    assert "nowhere: expected a folder of masks" in capsys.readouterr().err


def _chromium():
    """Headless Chromium through selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("Chromium or chromedriver not found (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def _loaded_images(browser, page):
    """``(number of <img>, sources that did not load)`` of ``page``, each image scrolled into view first."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    images = browser.find_elements(By.TAG_NAME, "img")
    failed = []
    for image in images:
        browser.execute_script("arguments[0].scrollIntoView()", image)
        WebDriverWait(browser, 20).until(lambda b: b.execute_script("return arguments[0].complete", image))
        if not browser.execute_script("return arguments[0].naturalWidth", image) > 0:
            failed.append(image.get_attribute("src"))
    return len(images), failed


def test_reports_open_in_chromium_with_every_image(evaluated, model, tmp_path):
    labelled, out, code, _, _ = evaluated
    page = out / "report.html"
    text = page.read_text()
    assert "http" not in text.replace("http-equiv", "") and "<script" not in text
    browser = _chromium()
    try:
        n, failed = _loaded_images(browser, page)
        assert n == 2 + 6 * 3 + 3 and not failed, failed  # curves, input/map/overlay per image, 3 masks
        from selenium.webdriver.common.by import By

        rows = browser.find_elements(By.CSS_SELECTOR, "table.images tbody tr")
        assert len(rows) == 6
        assert main(["detect", str(model), str(labelled / "good"), "--out", str(tmp_path / "d"), "--report"]) == 0
        n, failed = _loaded_images(browser, tmp_path / "d" / "report.html")
        assert n == 3 * 3 and not failed, failed
    finally:
        browser.quit()


def test_a_study_model_is_evaluated_at_a_given_threshold(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    manifest = json.loads(model.with_name("parts.json").read_text())
    del manifest["detection"]  # as a study model's manifest: no threshold of its own
    study = tmp_path / "study"
    study.with_name("study.json").write_text(json.dumps({**manifest, "weights": "study.weights.h5"}))
    study.with_name("study.weights.h5").write_bytes(model.with_name("parts.weights.h5").read_bytes())
    assert main(["evaluate", str(study), str(category), "--out", str(tmp_path / "a")]) == 2
    assert "has no detection threshold" in capsys.readouterr().err
    assert main(["evaluate", str(study), str(category), "--out", str(tmp_path / "b"), "--threshold", "0.5"]) == 0
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["images"] == {
        "scored": 5, "defect_free": 2, "defective": 3}


def _study_model_with(settings, tiny_model, folder):
    """A copy of the tiny model as a study model (no threshold of its own) whose training settings say ``settings``."""
    _, model = tiny_model
    manifest = json.loads(model.with_name("parts.json").read_text())
    del manifest["detection"]
    manifest["training"]["settings"].update(settings)
    stem = folder / "study"
    stem.with_name("study.json").write_text(json.dumps({**manifest, "weights": "study.weights.h5"}))
    stem.with_name("study.weights.h5").write_bytes(model.with_name("parts.weights.h5").read_bytes())
    return stem


@pytest.mark.parametrize("settings", [{"ssim_constants": "literal"}, {"window_size": 7, "window": "gaussian"}])
def test_a_study_model_is_scored_with_the_ssim_it_was_trained_with(tiny_model, tmp_path, settings):
    # a campaign arm trained with the SSIM constants read literally (or a Table II model of another window) was
    # scored with the standard constants and the 11x11 uniform window: maps of another residual than its loss
    from ssimlib.apps.own_detection import load_detector
    from ssimlib.evaluate import anomaly_maps

    category, _ = tiny_model
    detector = load_detector(str(_study_model_with(settings, tiny_model, tmp_path)), threshold=0.5)
    path = sorted((category / "test" / "stroke").glob("*.png"))[0]
    pixels = skimage.io.imread(path).astype(np.float32) / 255
    image = detector.as_model_channels(pixels[..., None] if pixels.ndim == 2 else pixels, path)
    reading = {"constants": settings.get("ssim_constants", "standard"), "window_size": settings.get("window_size", 11),
               "window": settings.get("window", "uniform")}
    common = {"kind": "ssim", "patch_size": detector.network.patch_size, "stride": detector.stride}
    (trained,), _ = anomaly_maps(detector.network, [image], **common, **reading)
    (standard,), _ = anomaly_maps(detector.network, [image], **common)
    got = detector.anomaly_map(image, path)
    assert np.allclose(got, trained, atol=1e-6) and not np.allclose(got, standard, atol=1e-3)


@pytest.mark.parametrize("settings", [{"ssim_constants": "loose"}, {"window_size": 4}, {"window": "box"}])
def test_a_study_model_of_an_unknown_ssim_is_refused_in_one_line(tiny_model, tmp_path, capsys, settings):
    category, _ = tiny_model
    study = _study_model_with(settings, tiny_model, tmp_path)
    assert main(["evaluate", str(study), str(category), "--out", str(tmp_path / "c"), "--threshold", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "study.json" in err and "SSIM window" in err


def test_an_earlier_evaluation_is_not_replaced(tiny_model, tmp_path, capsys):
    # a second evaluate into the same --out replaced metrics.json and left the first run's report.html beside it
    category, model = tiny_model
    out = tmp_path / "e"
    assert main(["evaluate", str(model), str(category), "--out", str(out)]) == 0
    capsys.readouterr()
    before = (out / "metrics.json").read_bytes()
    assert main(["evaluate", str(model), str(category), "--out", str(out), "--threshold", "0.5"]) == 2
    assert capsys.readouterr().err == (f"error: {out / 'metrics.json'}: --out {out} holds another evaluation (it "
                                       "differs in threshold); choose another --out or remove it\n")
    assert (out / "metrics.json").read_bytes() == before


@pytest.mark.parametrize("command, results", [("detect", "detections.csv"), ("evaluate", "evaluation.csv")])
def test_a_run_continued_without_report_rewrites_the_report_an_earlier_run_left(tiny_model, tmp_path, capsys,
                                                                                command, results):
    # the report of the first run stayed, showing the maps of images since replaced
    category, model = tiny_model
    copy = tmp_path / "category"
    shutil.copytree(category, copy)
    inputs = str(copy / "test" / "good" if command == "detect" else copy)
    out = tmp_path / "o"
    assert main([command, str(model), inputs, "--out", str(out), "--report"]) == 0
    first = (out / "report.html").read_text()
    shutil.copyfile(category / "test" / "stroke" / "000.png", copy / "test" / "good" / "000.png")  # another image
    capsys.readouterr()
    assert main([command, str(model), inputs, "--out", str(out)]) == 0
    assert "(rewritten without --report: --out held an earlier run's report.html)" in capsys.readouterr().out
    fresh = tmp_path / "fresh"
    assert main([command, str(model), inputs, "--out", str(fresh), "--report"]) == 0
    assert (out / "report.html").read_text() == (fresh / "report.html").read_text() != first
    assert (out / results).is_file()
    # a run into an --out without a report writes none
    assert main([command, str(model), inputs, "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "report.html").exists()


def test_detect_and_evaluate_do_not_share_an_out_folder(tiny_model, tmp_path, capsys):
    # the second command's report replaced the first's, both exit 0
    category, model = tiny_model
    assert main(["evaluate", str(model), str(category), "--out", str(tmp_path / "e"), "--report"]) == 0
    assert main(["detect", str(model), str(category / "test" / "good"), "--out", str(tmp_path / "d")]) == 0
    capsys.readouterr()
    assert main(["detect", str(model), str(category / "test" / "good"), "--out", str(tmp_path / "e")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'e' / 'evaluation.run.json'}: --out {tmp_path / 'e'} holds "
                                       "an evaluation; choose another --out for detect\n")
    assert main(["evaluate", str(model), str(category), "--out", str(tmp_path / "d")]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'd' / 'detections.run.json'}: --out {tmp_path / 'd'} "
                                       "holds detect's detections; choose another --out for evaluate\n")
    assert "ssimlib evaluate" in (tmp_path / "e" / "report.html").read_text()


def test_a_stopped_continued_evaluation_leaves_no_summary_of_older_maps(tiny_model, tmp_path, monkeypatch, capsys):
    from ssimlib.apps.scoring import Detector

    category, model = tiny_model
    copy = tmp_path / "category"
    shutil.copytree(category, copy)
    out = tmp_path / "o"
    assert main(["evaluate", str(model), str(copy), "--out", str(out), "--report"]) == 0
    shutil.copyfile(category / "test" / "stroke" / "000.png", copy / "test" / "good" / "000.png")
    (copy / "test" / "stroke" / "002.png").unlink()
    (copy / "ground_truth" / "stroke" / "002_mask.png").unlink()

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Detector, "anomaly_map", stopped)
        assert main(["evaluate", str(model), str(copy), "--out", str(out)]) == 130
    assert not (out / "metrics.json").exists() and not (out / "evaluation.csv").exists()
    assert "out of date" in (out / "report.html").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(model), str(copy), "--out", str(out)]) == 0
    assert "(rewritten without --report" in capsys.readouterr().out
    fresh = tmp_path / "fresh"
    assert main(["evaluate", str(model), str(copy), "--out", str(fresh), "--report"]) == 0
    for name in ("metrics.json", "evaluation.csv", "report.html"):
        assert (out / name).read_text() == (fresh / name).read_text().replace(str(fresh), str(out)), name
    assert sorted(p.relative_to(out) for p in (out / "images").rglob("*")) == \
        sorted(p.relative_to(fresh) for p in (fresh / "images").rglob("*"))  # stroke/002's maps gone with it


@pytest.mark.parametrize("error, line", [
    (OSError(28, "No space left on device", "/o/images/x_map.tif"),
     "error: /o/images/x_map.tif: No space left on device; "),
    (OSError("25600 requested and 24508 written"), "error: 25600 requested and 24508 written (is the disk full?); "),
])
def test_a_full_disk_is_one_line_that_says_how_to_go_on(tiny_model, tmp_path, monkeypatch, capsys, error, line):
    # a tester's: a full disk gave a traceback from deep in PIL (or tifffile), exit 1
    from ssimlib.apps import own_evaluation

    def full(*args):
        raise error

    category, model = tiny_model
    monkeypatch.setattr(own_evaluation, "_write_image_outputs", full)
    assert main(["evaluate", str(model), str(category), "--out", str(tmp_path / "o")]) == 1
    assert capsys.readouterr().err == line + "the same command reads back the maps of the images finished and " \
                                             "scores the others\n"


def test_a_continued_evaluation_warns_of_maps_read_back_as_of_maps_made(tiny_model, tmp_path, monkeypatch):
    # a tester's: the warning of a map above the threshold over most of its image was lost for maps read back
    from ssimlib.apps import scoring

    monkeypatch.setattr(scoring, "MARKED_SHARE", -1.0)  # every image warned of
    category, model = tiny_model
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert main(["evaluate", str(model), str(category), "--out", str(whole)]) == 0
    assert main(["evaluate", str(model), str(category), "--out", str(stopped)]) == 0
    (stopped / "metrics.json").unlink()
    assert main(["evaluate", str(model), str(category), "--out", str(stopped)]) == 0
    warned = json.loads((whole / "metrics.json").read_text())["warnings"]
    assert len([w for w in warned if "of its pixels lie above the threshold" in w]) == 5
    assert json.loads((stopped / "metrics.json").read_text())["warnings"] == warned


def test_a_stopped_evaluation_continues_to_the_uninterrupted_result(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert main(["evaluate", str(model), str(category), "--out", str(whole)]) == 0
    assert main(["evaluate", str(model), str(category), "--out", str(stopped)]) == 0
    # Make it look stopped: no metrics or CSV yet, the last image unfinished, a row cut short by the kill.
    (stopped / "metrics.json").unlink()
    (stopped / "evaluation.csv").unlink()
    lines = (stopped / "evaluation.progress.jsonl").read_text().splitlines()
    assert len(lines) == 5
    (stopped / "evaluation.progress.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    unfinished = {stopped / "images" / f"{json.loads(line)[0]}_map.tif" for line in lines[3:]}
    kept = {p: p.stat().st_mtime_ns for p in (stopped / "images").rglob("*_map.tif") if p not in unfinished}
    assert len(kept) == 3
    capsys.readouterr()
    assert main(["evaluate", str(model), str(category), "--out", str(stopped)]) == 0
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # read back, not computed again
    assert "defective; 3 of their maps made by an earlier run of this command, kept): pixel AUROC" in \
        capsys.readouterr().out
    assert json.loads((stopped / "metrics.json").read_text()) == json.loads((whole / "metrics.json").read_text())
    assert (stopped / "evaluation.csv").read_text() == (whole / "evaluation.csv").read_text()
    assert len((stopped / "evaluation.progress.jsonl").read_text().splitlines()) == 5  # the cut line dropped
    # an image replaced by an older file (cp -p, rsync -a and unzip keep its time) kept the other image's map
    changed = tmp_path / "changed"
    shutil.copytree(category, changed)
    argv = ["evaluate", str(model), str(changed), "--out", str(tmp_path / "again")]
    assert main(argv) == 0
    replaced = changed / "test" / "good" / "000.png"
    shutil.copyfile(changed / "test" / "stroke" / "000.png", replaced)
    os.utime(replaced, (0, 0))  # 1970: older than every map
    assert main(argv) == 0
    assert main(["evaluate", str(model), str(changed), "--out", str(tmp_path / "fresh")]) == 0
    assert (tmp_path / "again" / "evaluation.csv").read_text().replace("again", "fresh") == \
        (tmp_path / "fresh" / "evaluation.csv").read_text()


def _evaluate(argv, capsys):
    """Exit status, stderr lines and metrics.json of ``python -m ssimlib evaluate ARGV`` (metrics None if none)."""
    code = main(["evaluate", *map(str, argv)])
    out = Path(argv[argv.index("--out") + 1])
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else None
    return code, capsys.readouterr().err.strip().splitlines(), metrics


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Keras' NumPy 2 notice, which the command line never shows
def test_what_a_tester_gave_evaluate_is_each_scored_once_and_told_in_one_line(model, tmp_path, capsys):
    rng = np.random.default_rng(3)
    folder = tmp_path / "set"
    image, mask = draw_defects(_board(rng, 64, 64), rng)
    _save(folder / "stroke" / "a.png", image)
    _save(folder / "stroke" / "a_mask.png", mask.astype(np.float32))
    _save(folder / "good" / "b.png", _board(rng, 64, 64))
    expected = {"scored": 2, "defect_free": 1, "defective": 1}
    # an image given twice (a folder and a file in it) counted twice
    code, _, metrics = _evaluate([model, folder, folder / "stroke" / "a.png", "--out", tmp_path / "o1"], capsys)
    assert code == 0 and metrics["images"] == expected
    # links: to an image outside the folder (a traceback) and to folders (not followed: "holds no images")
    linked = tmp_path / "linked"
    (linked / "good").mkdir(parents=True)
    (linked / "good" / "b.png").symlink_to(folder / "good" / "b.png")
    (linked / "stroke").symlink_to(folder / "stroke")
    code, err, metrics = _evaluate([model, linked, "--out", tmp_path / "o2"], capsys)
    assert code == 0 and metrics["images"] == expected, err
    # an image with NaN pixels ended in a traceback and nothing written
    skimage.io.imsave(folder / "good" / "nan.tif", np.full((64, 64), np.nan, np.float32), check_contrast=False)
    code, err, metrics = _evaluate([model, folder, "--out", tmp_path / "o3"], capsys)
    assert code == 2 and err == [f"error: {folder / 'good' / 'nan.tif'}: 4096 pixels are NaN or infinite; expected "
                                 "finite values in [0, 1]"] and metrics["images"] == expected
    (folder / "good" / "nan.tif").unlink()
    # --out a file, or the input folder itself: one line, nothing written
    (tmp_path / "a_file").write_text("")
    for out, message in ((tmp_path / "a_file", f"--out: {tmp_path / 'a_file'} is a file, not a folder"),
                         (folder, f"--out {folder}: holds the input folder {folder}; choose an --out outside it")):
        code, err, _ = _evaluate([model, folder, "--out", out], capsys)
        assert code == 2 and err == [f"error: {message}"]
    # its own outputs, in an --out inside the input folder, were scored as images on the next run
    code, err, metrics = _evaluate([model, folder, "--out", folder / "out", "--report"], capsys)
    assert code == 0 and not err and metrics["images"] == expected, err
    code, err, _ = _evaluate([model, folder, "--out", folder / "out", "--threshold", "0.5"], capsys)  # not replaced
    assert code == 2 and len(err) == 1 and "holds another evaluation" in err[0], err
    # another --out beside it: the first run's output folder was scored (30 images)
    code, err, metrics = _evaluate([model, folder, "--out", folder / "out2"], capsys)
    assert code == 0 and metrics["images"] == expected
    assert err == [f"warning: {folder / 'out'}: an earlier evaluation's output (metrics.json, evaluation.csv), "
                   "not searched"]


def test_labels_a_tester_found_wrong_are_refused_or_left_out(tmp_path):
    def touch(*names):
        for name in names:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b"")

    # --masks with an MVTec AD category was ignored for its ground_truth/: the masks given are the ones used
    touch("c/test/good/0.png", "c/test/cut/0.png", "c/ground_truth/cut/0_mask.png", "c/train/good/0.png",
          "alt/cut/0.png")
    items, bad, rule = find_labelled([tmp_path / "c"], masks=tmp_path / "alt")
    assert [(i.key, i.mask) for i in items] == [("cut/0", tmp_path / "alt/cut/0.png"), ("good/0", None)] and not bad
    assert f"{tmp_path / 'alt'}/<folder>/<stem>.*" in rule
    with pytest.raises(DatasetError, match="an MVTec AD category given with other inputs .*its train/ would be scored"):
        find_labelled([tmp_path / "c", tmp_path / "alt"])  # its train/good scored as defect-free test images
    # one flat folder of masks for two folders of images: 000.png was every 000's mask
    touch("i/scratch/000.png", "i/crack/000.png", "i/good/001.png", "m/000.png")
    items, bad, _ = find_labelled([tmp_path / "i/scratch", tmp_path / "i/crack", tmp_path / "i/good"],
                                  masks=tmp_path / "m")
    assert [i.path for i in items] == [tmp_path / "i/good/001.png"]
    assert sorted(p.parent.name for p, _ in bad) == ["crack", "scratch"]
    assert all(f"its mask {tmp_path / 'm/000.png'} is found for" in problem for _, problem in bad), bad
    # a review: the defect-folder rule looked above the folder given (project/good beside project/test dropped
    # every defect-free test image); a category's own ground_truth named by --masks, or its suffix by
    # --mask-suffix, were refused; a folder of good images with --masks needs no mask
    touch("p/good/t.png", "p/test/a.png", "p/test/a_mask.png", "p/test/b.png")
    items, bad, _ = find_labelled([tmp_path / "p/test"])
    assert [i.key for i in items] == ["a", "b"] and not bad
    touch("q/test/Good/0.png", "q/test/cut/1.png")  # good spelt otherwise: 1.png, without a mask, left out
    items, bad, _ = find_labelled([tmp_path / "q/test"])
    assert [i.key for i in items] == ["Good/0"] and [p.name for p, _ in bad] == ["1.png"]
    for kwargs in ({"masks": tmp_path / "c/ground_truth"}, {"mask_suffix": "_mask.png"}):
        items, bad, _ = find_labelled([tmp_path / "c"], **kwargs)
        assert [(i.key, i.mask and i.mask.name) for i in items] == [("cut/0", "0_mask.png"), ("good/0", None)], kwargs
    touch("g/good/0.png")
    assert [i.key for i in find_labelled([tmp_path / "g"], masks=tmp_path / "alt")[0]] == ["good/0"]
    # a mistyped --mask-suffix scored every image as defect-free and blocked the corrected command's --out
    touch("t/11.png", "t/11_mask.png", "t/a.png.jpg", "t/a.jpg", "t/a.png")
    with pytest.raises(DatasetError, match=r"^--mask-suffix _mask: no file ends in it, so nothing was scored \(did "
                                           r"you mean --mask-suffix _mask\.png\?\)$"):
        find_labelled([tmp_path / "t"], mask_suffix="_mask")
    with pytest.raises(DatasetError, match=r"^--masks .*alt: no mask there fits an image"):
        find_labelled([tmp_path / "t"], masks=tmp_path / "alt")
    # given in this order, a.png.jpg and a.png shared the key a.png: one's map overwrote the other's
    items, _, _ = find_labelled([tmp_path / "t" / name for name in ("a.png.jpg", "a.jpg", "a.png")])
    assert len({i.key for i in items}) == 3
    # an image of a defect type's folder whose mask is missing counted defect-free
    touch("n/good/0.png", "n/scratch/1.png", "n/scratch/2.png", "nm/scratch/1.png")
    items, bad, rule = find_labelled([tmp_path / "n"], masks=tmp_path / "nm")
    assert [i.key for i in items] == ["good/0", "scratch/1"]
    # the summary named the others defect-free, the image left out among them
    assert rule.endswith("1 of 2 images has one, the others count as defect-free; 1 other file left out (named below)")
    assert bad == [(tmp_path / "n/scratch/2.png", "lies in a defect type's folder (scratch/, beside good/) but has no "
                                                  "mask: left out, not counted defect-free")]


def test_a_mask_is_a_mask_and_a_missing_one_is_not_defect_free(model, tmp_path, capsys):
    rng = np.random.default_rng(4)
    # rule 4b took a PNG copy of a TIFF photo for its mask: a defect-free image became defective
    copies = tmp_path / "copies"
    board, photo = _board(rng, 64, 64), ndimage.gaussian_filter(rng.random((64, 64)), 3)
    photo = (photo - photo.min()) / (photo.max() - photo.min())
    for name, image in (("board", board), ("photo", photo)):  # two-valued like a mask, and not
        _save(copies / f"{name}.tif", image, bits=16)
        _save(copies / f"{name}.png", image)
    items, bad, rule = find_labelled([copies])
    assert [(i.path.name, i.mask) for i in items] == [(f"{n}.{s}", None) for n in ("board", "photo")
                                                      for s in ("png", "tif")]
    assert not bad
    # an MVTec AD category whose ground_truth lacks one mask counted that defective image defect-free
    category = tmp_path / "cat"
    for name in ("000", "001"):
        image, mask = draw_defects(_board(rng, 64, 64), rng)
        _save(category / "test" / "bent" / f"{name}.png", image)
    _save(category / "ground_truth" / "bent" / "000_mask.png", mask.astype(np.float32))
    _save(category / "test" / "good" / "002.png", _board(rng, 64, 64))
    code, err, metrics = _evaluate([model, category, "--out", tmp_path / "o"], capsys)
    missing = category / "ground_truth" / "bent" / "001_mask.png"
    assert code == 2 and err == [f"error: {category / 'test' / 'bent' / '001.png'}: expected its mask {missing}, "
                                 "it does not exist"]
    assert metrics["images"] == {"scored": 2, "defect_free": 1, "defective": 1}


def test_evaluate_resizes_as_detect_does(tiny_model, tmp_path, capsys):
    # a model whose preset resizes (as the MVTec AD study models do) was fed the image at its own size
    category, model = tiny_model
    manifest = json.loads(model.with_name("parts.json").read_text())
    manifest["detection"]["preset"]["resize"] = 48
    resized = tmp_path / "resized"
    resized.with_name("resized.json").write_text(json.dumps({**manifest, "weights": "resized.weights.h5"}))
    resized.with_name("resized.weights.h5").write_bytes(model.with_name("parts.weights.h5").read_bytes())
    test = category / "test"
    images = sorted((test / "stroke").glob("*.png")) + sorted((test / "good").glob("*.png"))
    assert main(["detect", str(resized), *map(str, images), "--out", str(tmp_path / "d")]) == 0
    with open(tmp_path / "d" / "detections.csv", newline="") as file:
        detected = {Path(row["path"]).resolve(): float(row["score"]) for row in csv.DictReader(file)}
    code, err, metrics = _evaluate([resized, category, "--out", tmp_path / "e"], capsys)
    assert code == 0, err
    with open(tmp_path / "e" / "evaluation.csv", newline="") as file:
        evaluated = {Path(row["path"]).resolve(): float(row["score"]) for row in csv.DictReader(file)}
    assert evaluated.keys() == detected.keys() and len(evaluated) == 5
    for path, score in evaluated.items():
        assert score == pytest.approx(detected[path], rel=1e-6), path
    assert skimage.io.imread(tmp_path / "e" / "images" / "good" / "000_map.tif").shape == (48, 48)
    assert metrics["pixels"]["total"] == 5 * 48 * 48


def test_the_report_shows_a_label_image_mask_as_the_metrics_read_it(model, tmp_path, capsys):
    # a mask of 0s and 1s counted its defect in metrics.json but showed an empty thumbnail in the report
    rng = np.random.default_rng(5)
    image, mask = draw_defects(_board(rng, 64, 64), rng)
    folder = tmp_path / "set"
    _save(folder / "a.png", image)
    folder.joinpath("a_mask.png").parent.mkdir(parents=True, exist_ok=True)
    skimage.io.imsave(folder / "a_mask.png", mask.astype(np.uint8), check_contrast=False)  # 0 and 1
    code, err, metrics = _evaluate([model, folder, "--out", tmp_path / "o", "--report"], capsys)
    assert metrics["pixels"]["defect"] == mask.sum() > 0, err
    (thumbnail,) = (tmp_path / "o" / "report").glob("*_mask.png")
    np.testing.assert_array_equal(skimage.io.imread(thumbnail) > 127, mask)  # 64 px: stored at full size


def test_what_a_tester_labelled_is_paired_and_read_as_meant(model, tmp_path, capsys):
    rng = np.random.default_rng(6)
    image, mask = draw_defects(_board(rng, 64, 64), rng)
    # one folder, two naming styles: a.jpg + a.png, and d.png + d-MASK.png (the _mask rule took all, a.png an image)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _save(mixed / "a.jpg", image)
    _save(mixed / "a.png", mask.astype(np.float32))
    _save(mixed / "d.png", image)
    _save(mixed / "d-MASK.png", mask.astype(np.float32))
    _save(mixed / "e.png", _board(rng, 64, 64))
    items, bad, rule = find_labelled([mixed])
    assert [(i.key, i.mask and i.mask.name) for i in items] == [("a", "a.png"), ("d", "d-MASK.png"), ("e", None)]
    assert not bad and "2 of 3 images have one" in rule
    # with a --mask-suffix that fits none, the *_mask files were scored as images; now nothing is scored
    with pytest.raises(DatasetError, match=r"^--mask-suffix _gt\.png: no file ends in it, so nothing was scored$"):
        find_labelled([mixed], mask_suffix="_gt.png")
    # a mask marking only defect pixels gave a traceback; nothing to score wrote a metrics.json blocking the re-run
    whole = tmp_path / "whole"
    _save(whole / "w.png", image)
    _save(whole / "w_mask.png", np.ones((64, 64), np.float32))
    code, err, metrics = _evaluate([model, whole, "--out", tmp_path / "o1"], capsys)
    assert any("w_mask.png: marks 100% of its pixels as defect" in line and "inverted?" in line for line in err), err
    assert code == 2 and metrics["pixel_auroc"] is None and metrics["defective_correct"] is not None
    assert any(line.startswith("error: no defect-free pixels") for line in err)
    assert "warning: no defect-free images (every mask marks a defect): no image AUROC" in err
    code, err, _ = _evaluate([model, tmp_path / "nowhere", "--out", tmp_path / "o2"], capsys)
    assert code == 2 and err == [f"error: {tmp_path / 'nowhere'}: no such file or folder"]
    assert not (tmp_path / "o2").exists()


def test_the_report_puts_misclassified_images_first():
    from ssimlib.apps.report import Entry, worst_first

    def entry(name, score, verdict, label):
        return Entry(name, Path(name), Path(name), Path(name), score, verdict, label)

    # a defective image scoring past the threshold but with too small a region is classified good: it was listed
    # below correctly classified defect-free images that scored just under the threshold
    entries = [entry("good_close", 0.99985, "good", "good"), entry("missed", 1.00001, "good", "defective"),
               entry("found", 1.5, "defective", "defective"), entry("false_alarm", 1.2, "defective", "good")]
    assert [e.name for e in worst_first(entries, 0.9999)] == ["false_alarm", "missed", "good_close", "found"]


def test_an_image_given_as_a_file_brings_its_mask_and_a_detect_output_is_no_input(tmp_path):
    # a tester's: `evaluate MODEL s/bent/000.png f` counted 000.png defect-free though 000_mask.png lay beside it,
    # and `evaluate MODEL z` scored the maps of `detect ... --out z/det` as defect-free images
    rng = np.random.default_rng(3)
    image, mask = draw_defects(_board(rng, 64, 64), rng)
    for folder in ("s", "f"):
        _save(tmp_path / folder / "000.png", image)
        _save(tmp_path / folder / "000_mask.png", mask.astype(np.float32))
    _save(tmp_path / "s" / "000.gt.png", mask.astype(np.float32))  # no mask by name: not brought along
    _save(tmp_path / "f" / "good.png", _board(rng, 64, 64))
    items, bad, _ = find_labelled([tmp_path / "s" / "000.png", tmp_path / "f"])
    assert {(item.path.relative_to(tmp_path).as_posix(), item.mask and item.mask.name) for item in items} == {
        ("s/000.png", "000_mask.png"), ("f/000.png", "000_mask.png"), ("f/good.png", None)} and not bad
    items, _, _ = find_labelled([tmp_path / "s" / "000.png"], mask_suffix=".gt.png")
    assert [(item.path.name, item.mask.name) for item in items] == [("000.png", "000.gt.png")]
    detected = tmp_path / "f" / "det"
    _save(detected / "good_map.png", _board(rng, 64, 64))
    (detected / "detections.run.json").write_text("{}")
    with pytest.warns(UserWarning, match=r"det: a detect run's output \(detections.run.json\), not searched"):
        items, _, _ = find_labelled([tmp_path / "f"], mask_suffix="_mask.png")
    assert sorted(item.path.name for item in items) == ["000.png", "good.png"]


def test_names_of_latin_1_bytes_and_names_too_long_for_outputs_are_scored_and_written(model, tmp_path, capsys):
    # a tester's: a Latin-1 name from a Windows share crashed the CSV writer after every map was made (the CSV left
    # with its header, no report), and an image of 82 CJK characters crashed at its overlay's name (File name too
    # long), in evaluate and detect alike, on every rerun
    rng = np.random.default_rng(4)
    folder = tmp_path / "set"
    long = "缺陷图像" * 20 + "缺陷"
    latin_1 = os.fsdecode(b"caf\xe9")
    for stem in (latin_1, long):
        image, mask = draw_defects(_board(rng, 64, 64), rng)
        _save(folder / f"{stem}.png", image)
        _save(folder / f"{stem}_mask.png", mask.astype(np.float32))
    _save(folder / "good.png", _board(rng, 64, 64))
    _save(folder / latin_1 / "good.png", _board(rng, 64, 64))  # a folder so named: its outputs' folder escaped
    out = tmp_path / "out"
    assert main(["evaluate", str(model), str(folder), "--out", str(out), "--report"]) == 0
    text = (out / "evaluation.csv").read_bytes().decode("utf-8")  # valid UTF-8, the Latin-1 byte escaped
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(Path(row["path"]).name for row in rows) == sorted(["caf\\xe9.png", f"{long}.png", "good.png",
                                                                     "good.png"])
    assert all((out / row["anomaly_map"]).is_file() and (out / row["overlay"]).is_file() for row in rows)
    assert "caf\\xe9" in (out / "report.html").read_text(encoding="utf-8")
    assert json.loads((out / "metrics.json").read_text())["images"]["scored"] == 4
    _save(tmp_path / "more" / f"{latin_1}_mask.png", np.zeros((64, 64)))  # a mask without an image: a problem
    _save(tmp_path / "more" / "good.png", _board(rng, 64, 64))
    assert main(["evaluate", str(model), str(tmp_path / "more"), "--out", str(tmp_path / "out2")]) == 2
    problems = json.loads((tmp_path / "out2" / "metrics.json").read_text())["problems"]
    assert problems[0].startswith(f"{tmp_path}/more/caf\\xe9_mask.png: a mask without an image"), problems
    detected = tmp_path / "detected"
    for _ in range(2):  # the second run keeps every row of the first
        assert main(["detect", str(model), str(folder), str(folder / latin_1), "--out", str(detected), "--report"]) == 0
    said = [line for line in capsys.readouterr().out.splitlines() if "defective," in line]
    assert "(4 of them done by an earlier run" in said[-1], said
    rows = list(csv.DictReader(io.StringIO((detected / "detections.csv").read_bytes().decode("utf-8"))))
    assert len(rows) == 4 and all((detected / row["anomaly_map"]).is_file() for row in rows)
    assert max(len(p.name.encode()) for p in detected.rglob("*")) <= 255 - len(".partial-")


def test_a_mask_that_looks_wrong_is_left_out_or_its_warning_kept_with_the_metrics(model, tmp_path, capsys):
    # a tester's: an inverted mask and a 0/1 mask saved as JPEG were warned of, then both went into every metric
    # (the JPEG one read as marking nothing: its defective image counted defect-free), exit 0, "problems": []
    rng = np.random.default_rng(5)
    folder = tmp_path / "set"
    for stem in ("ok", "inverted", "jpeg"):
        image, mask = draw_defects(_board(rng, 64, 64), rng)
        _save(folder / f"{stem}.png", image)
        if stem == "ok":
            _save(folder / "ok_mask.png", mask.astype(np.float32))
        elif stem == "inverted":
            _save(folder / "inverted_mask.png", 1.0 - mask)
        else:
            Image.fromarray(mask.astype(np.uint8)).save(folder / "jpeg_mask.jpg", quality=95)
    _save(folder / "good.png", _board(rng, 64, 64))
    out = tmp_path / "out"
    assert main(["evaluate", str(model), str(folder), "--out", str(out), "--report"]) == 2
    err = capsys.readouterr().err
    assert "jpeg_mask.jpg: a JPEG mask that marks nothing" in err and "inverted_mask.png: marks" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"]["scored"] == 3  # ok, inverted, good; not jpeg
    (problem,) = metrics["problems"]
    assert f"{folder / 'jpeg_mask.jpg'}: a JPEG mask that marks nothing" in problem
    (warning,) = [line for line in metrics["warnings"] if "inverted_mask.png" in line]
    assert "is it inverted?" in warning and "is it inverted?" in (out / "report.html").read_text()


def test_masks_of_another_ending_in_a_masks_folder_are_named_in_the_refusal(tmp_path):
    # a tester's: NanoTWICE's layout (images/ITIA1101.tif, gt/ITIA1101_gt.png) with --masks gt alone said no mask
    # fits, with no word of the --mask-suffix that works
    rng = np.random.default_rng(6)
    for stem in ("ITIA1101", "ITIA1102"):
        image, mask = draw_defects(_board(rng, 64, 64), rng)
        _save(tmp_path / "images" / f"{stem}.tif", image)
        _save(tmp_path / "gt" / f"{stem}_gt.png", mask.astype(np.float32))
    with pytest.raises(DatasetError, match=r"nothing was scored \(did you mean --mask-suffix _gt\.png\?\)$"):
        find_labelled([tmp_path / "images"], masks=tmp_path / "gt")
    with pytest.raises(DatasetError, match=r"nothing was scored$"):  # gt/ is not gt/<folder>/: no suffix would do
        find_labelled([tmp_path], masks=tmp_path / "gt")
    items, bad, _ = find_labelled([tmp_path / "images"], masks=tmp_path / "gt", mask_suffix="_gt.png")
    assert [item.mask.name for item in items] == ["ITIA1101_gt.png", "ITIA1102_gt.png"] and not bad


def test_the_maps_of_an_image_gone_are_kept_while_another_file_is_unpaired(model, tmp_path, capsys):
    # a continued evaluation removes the maps of an image no longer found only when every file was listed and
    # paired: a problem elsewhere (a share half mounted, a mask without its image) may mean the image is not gone
    rng = np.random.default_rng(7)
    folder = tmp_path / "set"
    image, mask = draw_defects(_board(rng, 64, 64), rng)
    _save(folder / "ok.png", image)
    _save(folder / "ok_mask.png", mask.astype(np.float32))
    for name in ("good.png", "gone.png"):
        _save(folder / name, _board(rng, 64, 64))
    out = tmp_path / "out"
    argv = ["evaluate", str(model), str(folder), "--out", str(out)]
    assert main(argv) == 0
    gone_maps = sorted((out / "images").glob("gone_*"))
    assert len(gone_maps) == 3
    (folder / "gone.png").unlink()
    _save(folder / "orphan_mask.png", mask.astype(np.float32))
    assert main(argv) == 2 and all(p.exists() for p in gone_maps)
    (folder / "orphan_mask.png").unlink()
    assert main(argv) == 0 and not any(p.exists() for p in gone_maps)


def test_an_empty_mask_in_a_defect_types_folder_is_warned_of(model, tmp_path, capsys):
    # a tester's: scratch/d1_mask.png exported before anything was painted counted d1 defect-free without a word
    rng = np.random.default_rng(6)
    image, mask = draw_defects(_board(rng, 64, 64), rng)
    _save(tmp_path / "set" / "scratch" / "d0.png", image)
    _save(tmp_path / "set" / "scratch" / "d0_mask.png", mask.astype(np.float32))
    _save(tmp_path / "set" / "scratch" / "d1.png", _board(rng, 64, 64))
    _save(tmp_path / "set" / "scratch" / "d1_mask.png", np.zeros((64, 64), np.float32))
    _save(tmp_path / "set" / "good" / "g0.png", _board(rng, 64, 64))
    out = tmp_path / "out"
    assert main(["evaluate", str(model), str(tmp_path / "set"), "--out", str(out)]) == 0
    expected = (f"{tmp_path / 'set' / 'scratch' / 'd1.png'}: lies in a defect type's folder (scratch/), but its mask "
                f"{tmp_path / 'set' / 'scratch' / 'd1_mask.png'} marks nothing: counted defect-free")
    assert expected in capsys.readouterr().err
    assert any(expected in line for line in json.loads((out / "metrics.json").read_text())["warnings"])


def test_a_model_that_resizes_says_so_once(tmp_path, capsys):
    # a tester's: the grid model's defect pixel counts (383) were not the mask file's (287), without a word
    model = Path(__file__).resolve().parents[1] / "models" / "mvtec" / "grid-ssim-cvpr2019"
    rng = np.random.default_rng(3)
    for stem in ("d0", "d1"):
        image, mask = draw_defects(_board(rng, 128, 128), rng)
        _save(tmp_path / "set" / "bad" / f"{stem}.png", image)
        _save(tmp_path / "set" / "bad" / f"{stem}_mask.png", mask.astype(np.float32))
    _save(tmp_path / "set" / "good" / "g0.png", _board(rng, 128, 128))
    assert main(["evaluate", str(model), str(tmp_path / "set"), "--out", str(tmp_path / "out"),
                 "--threshold", "0.5"]) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if "resizes every image" in line]
    assert said == [f"warning: {model}: resizes every image to 256x256 px, as it was trained: maps, overlays, masks "
                    "and defect pixel counts are in those pixels"]

"""`ssimlib evaluate` and the HTML report on a generated labelled set, checked against an independent computation."""

import contextlib
import csv
import io
import json
import shutil

import numpy as np
import pytest
import skimage.io
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
    """`ssimlib evaluate --report` on the labelled set: ``(labelled folder, out folder, exit status, stdout, stderr)``."""
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
    assert "masks: beside the images, a PNG of the same stem" in stdout and "3 of 6 images have one" in stdout
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


def test_mask_layouts(tmp_path):
    def touch(*names):
        for name in names:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(b"")

    touch("a/good/1.png", "a/bad/2.jpg", "gt/bad/2_m.png", "gt/bad/9_m.png")
    items, bad, rule = find_labelled([tmp_path / "a"], masks=tmp_path / "gt", mask_suffix="_m.png")
    assert [(i.key, i.kind, i.mask and i.mask.name) for i in items] == [("bad/2", "bad", "2_m.png"), ("good/1", "good", None)]
    assert bad == [(tmp_path / "gt/bad/9_m.png", "a mask without an image")] and "parallel folder" in rule
    touch("b/x.jpg", "b/x_mask.png", "b/y.jpg", "b/z_mask.png")
    items, bad, rule = find_labelled([tmp_path / "b"])
    assert [(i.key, i.mask and i.mask.name) for i in items] == [("x", "x_mask.png"), ("y", None)]
    assert bad[0][0].name == "z_mask.png" and "_mask.* (found automatically); 1 of 2" in rule
    items, _, rule = find_labelled([tmp_path / "b"], mask_suffix="_mask.png")
    assert rule.startswith("masks: beside the images, <stem>_mask.png")
    touch("c/test/good/0.png", "c/test/cut/0.png", "c/ground_truth/cut/0_mask.png", "c/train/good/0.png")
    items, bad, rule = find_labelled([tmp_path / "c"])
    assert [(i.key, i.mask and i.mask.name) for i in items] == [("cut/0", "0_mask.png"), ("good/0", None)] and not bad
    assert rule.startswith("masks: an MVTec AD category")
    with pytest.raises(DatasetError, match="lies in the folder of masks"):
        find_labelled([tmp_path / "b"], masks=tmp_path / "b", mask_suffix="_mask.png")
    touch("d/0.png", "d/1.jpg")
    items, bad, rule = find_labelled([tmp_path / "d"])
    assert [i.mask for i in items] == [None, None] and not bad
    assert rule.startswith("masks: none found beside the images") and rule.endswith("all 2 images count as defect-free")


def test_masks_of_0_255_and_label_images_of_0_1_mark_the_same_pixels(tmp_path):
    from ssimlib.apps.labelled import Labelled, read_labelled_mask

    defect = np.zeros((8, 10), bool)
    defect[2:5, 3:7] = True
    noise = np.zeros((8, 10), np.uint8)  # low levels, as JPEG leaves on an empty mask: more than two, no defect
    noise[::3, ::2], noise[1, 1], noise[4, 4] = 1, 2, 3
    cases = {"255.png": defect.astype(np.uint8) * 255, "01.png": defect.astype(np.uint8),
             "01_16bit.png": defect.astype(np.uint16), "0_40.png": defect.astype(np.uint8) * 40,
             "empty.png": np.zeros((8, 10), np.uint8), "noise.png": noise}
    for name, array in cases.items():
        skimage.io.imsave(tmp_path / name, array, check_contrast=False)
        got = read_labelled_mask(Labelled(tmp_path / "image.png", tmp_path / name, "image", ""), (8, 10))
        expected = defect if name not in ("empty.png", "noise.png") else np.zeros_like(defect)
        np.testing.assert_array_equal(got, expected, err_msg=name)


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
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3, err
    assert any("wrong_size_mask.png: mask is 64x48 but its image" in line and "wrong_size.png is 64x64" in line
               for line in err)
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
    assert main(["evaluate", str(model), str(folder), "--masks", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
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

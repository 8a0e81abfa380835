"""`ssimlib train` and `ssimlib detect` on generated folders, good, defective and broken files alike."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import skimage.io

from ssimlib.apps.cli import main


def test_train_writes_a_model_with_a_validation_threshold(tiny_model):
    category, model = tiny_model
    manifest = json.loads(model.with_name("parts.json").read_text())
    assert model.with_name("parts.weights.h5").exists() and (model.parent / "parts.checkpoint").is_dir()
    detection = manifest["detection"]
    assert detection["threshold"] > 0 and detection["min_defect_area"] == 16
    assert len(manifest["training"]["validation_images"]) == 2  # 25 % of the 8 training images
    assert manifest["training"]["epochs_done"] == 2 and manifest["architecture"]["channels"] == 1
    assert manifest["training"]["data"] == "parts"  # the folder, not this machine's absolute path


def test_detect_on_good_defective_and_broken_files(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "broken.png").write_bytes(b"not an image")
    skimage.io.imsave(inputs / "tiny.png", np.zeros((16, 16), np.uint8), check_contrast=False)
    rgb = (skimage.io.imread(category / "test" / "stroke" / "000.png")[..., None].repeat(3, -1))
    skimage.io.imsave(inputs / "colour.png", rgb, check_contrast=False)
    out = tmp_path / "out"
    code = main(["detect", str(model), str(category / "test" / "good"), str(category / "test" / "stroke"),
                 str(inputs), str(tmp_path / "missing.png"), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]  # one line each
    assert [line.endswith("colour.png: colour image converted to gray for a gray (1-channel) model")
            for line in warnings].count(True) == 1
    assert any("tiny.png: image is 16x16, smaller than the 32x32 patch: padded" in line for line in warnings)
    for name in ("broken.png", "missing.png"):
        assert name in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert not any("tiny.png" in line for line in errors) and "could not read it as an image" in captured.err
    with open(out / "detections.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 + 3 + 2  # every usable image, the converted colour one and the padded tiny one included
    for row in rows:
        assert row["verdict"] in ("good", "defective") and float(row["score"]) >= 0
        assert (row["verdict"] == "defective") == (int(row["defect_area_px"]) > 0)
        assert (out / row["anomaly_map"]).exists() and (out / row["overlay"]).exists()
    overlay = skimage.io.imread(out / rows[0]["overlay"])
    assert overlay.shape == (64, 64, 3) and overlay.dtype == np.uint8
    tiny = next(row for row in rows if row["path"].endswith("tiny.png"))
    assert skimage.io.imread(out / tiny["anomaly_map"]).shape == (16, 16)  # padded to the patch, cropped back
    # A threshold above every score finds nothing (2 is the most any residual reaches).
    assert main(["detect", str(model), str(category / "test" / "stroke"), "--out", str(tmp_path / "o2"),
                 "--threshold", "2"]) == 0
    with open(tmp_path / "o2" / "detections.csv") as file:
        assert {row["verdict"] for row in csv.DictReader(file)} == {"good"}


def test_bad_input_exits_2_with_one_line(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    empty = tmp_path / "empty"
    empty.mkdir()
    two_bad = tmp_path / "two_bad"  # train named only the first unreadable file, one fix per run
    two_bad.mkdir()
    (two_bad / "broken.png").write_bytes(b"not a PNG")
    (two_bad / "empty.tif").write_bytes(b"")
    (two_bad / "fine.png").write_bytes((category / "train" / "good" / "000.png").read_bytes())
    labelled = tmp_path / "labelled"  # a folder of defective images and their masks, trained on as defect-free
    labelled.mkdir()
    for name in ("000.png", "000-Mask.png"):
        (labelled / name).write_bytes((category / "train" / "good" / "000.png").read_bytes())
    cases = [
        (["train", str(labelled), "--out", str(tmp_path / "m")],
         f"{labelled}: holds 1 file(s) named like masks (000-Mask.png); train on a folder of defect-free images only"),
        (["train", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m")], "nowhere: expected a folder"),
        (["train", str(empty), "--out", str(tmp_path / "m")], "empty: expected defect-free images"),
        (["train", str(two_bad), "--out", str(tmp_path / "m")],
         f"{two_bad / 'broken.png'}: could not read it as an image (its contents are not a PNG image); "
         f"{two_bad / 'empty.tif'}: could not read it as an image (the file is empty, 0 bytes) "
         "(2 of 3 images unreadable)"),
        (["train", str(category), "--out", str(tmp_path / "m"), "--patch-size", "128"],
         "smaller than the 128x128 patch; so are 7 more (001.png, 002.png, 003.png, ...) (choose a smaller "
         "--patch-size)"),
        (["detect", str(tmp_path / "no_model"), str(category), "--out", str(tmp_path / "o")],
         "no_model.json: no such model manifest"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    altered = tmp_path / "altered"
    for suffix in (".weights.h5", ".json"):
        altered.with_name("altered" + suffix).write_bytes(model.with_name("parts" + suffix).read_bytes())
    weights = altered.with_name("altered.weights.h5")
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    assert main(["detect", str(altered), str(category), "--out", str(tmp_path / "o")]) == 2
    assert "differs from its manifest" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "data", "--out", "m", "--epochs", "0"],
                                  ["detect", "m", "images", "--out", "o", "--threshold", "3"],
                                  ["evaluate", "m", "images", "--out", "o", "--threshold", "-1"]])
def test_a_bad_option_is_named_before_keras_loads(argv):
    # each waited half a minute for TensorFlow before its one line
    code = ("import sys; from ssimlib.apps.cli import main; code = main(sys.argv[1:]); "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules; sys.exit(code)")
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith("error: --")

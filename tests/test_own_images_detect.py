"""`ssimlib detect` from the user's side: one map per input, a CSV true to the files, study models, bad manifests."""

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.io

from ssimlib.apps.cli import main
from ssimlib.paths import REPO_ROOT

REPO = Path(__file__).resolve().parents[1]


def run_main(argv, capsys):
    """Exit status and the stderr lines of ``python -m ssimlib ARGV``, run in this process."""
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def read_rows(out):
    with open(out / "detections.csv", newline="") as file:
        return list(csv.DictReader(file))


def visible_files(folder, suffix):
    """Paths (relative to ``folder``, POSIX) of the files under it ending in ``suffix``, hidden ones left out."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob(f"*{suffix}") if not p.name.startswith("."))


def test_same_named_images_keep_a_map_each(tiny_model, tmp_path):
    category, model = tiny_model
    good, stroke = category / "test" / "good", category / "test" / "stroke"
    assert {p.name for p in good.iterdir()} <= {p.name for p in stroke.iterdir()}  # 000.png, 001.png in both
    out = tmp_path / "d"
    assert main(["detect", str(model), str(good), str(stroke), "--out", str(out)]) == 0
    rows = read_rows(out)
    assert len(rows) == 5 and len({row["anomaly_map"] for row in rows}) == 5
    assert visible_files(out, "_map.png") == sorted(row["anomaly_map"] for row in rows)
    assert visible_files(out, "_overlay.png") == sorted(row["overlay"] for row in rows)
    # Each row's map is the one of its own image: the same as detecting that image alone.
    for row in rows:
        alone = tmp_path / "alone" / row["anomaly_map"].replace("/", "_")
        assert main(["detect", str(model), row["path"], "--out", str(alone)]) == 0
        (only,) = read_rows(alone)
        np.testing.assert_array_equal(skimage.io.imread(out / row["anomaly_map"]),
                                      skimage.io.imread(alone / only["anomaly_map"]))
        assert Path(row["path"]).parent.name == Path(row["anomaly_map"]).parent.name


def test_a_second_run_into_one_folder_is_refused(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    out = tmp_path / "d"
    assert main(["detect", str(model), str(category / "test" / "good"), "--out", str(out)]) == 0
    before = sorted((p.name, p.read_bytes()) for p in out.rglob("*") if p.is_file())
    code, err = run_main(["detect", str(model), str(category / "test" / "stroke"), "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1 and "detections.csv" in err[0] and "--out" in err[0], err
    assert sorted((p.name, p.read_bytes()) for p in out.rglob("*") if p.is_file()) == before


def test_a_folder_of_subfolders_is_named_with_them_and_nothing_is_written(tiny_model, tmp_path, capsys):
    # `detect .../bottle/test` said "folder holds no images" and wrote an empty detections.csv, which then refused
    # the corrected command
    category, model = tiny_model
    out = tmp_path / "d"
    code, err = run_main(["detect", str(model), str(category / "test"), "--out", str(out)], capsys)
    assert code == 2 and len(err) == 1, err
    assert f"{category / 'test'}: folder holds no images (only subfolders: good, stroke;" in err[0]
    assert f"give them, e.g. {category / 'test' / '*'})" in err[0] and not out.exists()
    assert main(["detect", str(model), str(category / "test" / "good"), "--out", str(out)]) == 0


def test_outputs_in_an_input_folder_are_not_read_back_and_no_file_is_overwritten(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    images = tmp_path / "images"
    images.mkdir()
    for p in (category / "test" / "stroke").iterdir():
        (images / p.name).write_bytes(p.read_bytes())
    assert main(["detect", str(model), str(images), "--out", str(images)]) == 0
    assert sorted(Path(row["path"]).name for row in read_rows(images)) == ["000.png", "001.png", "002.png"]
    (images / "detections.csv").unlink()
    before = {p: p.read_bytes() for p in images.iterdir()}
    code, err = run_main(["detect", str(model), str(images), "--out", str(images)], capsys)
    assert code == 2 and len(err) == 2, err
    assert err[0].startswith(f"warning: {images}: 6 files in --out or beside a detections.csv taken for an earlier "
                             "run's maps and overlays")
    assert err[1].startswith(f"error: {images / '000_map.png'}: exists") and "choose another --out" in err[1]
    assert {p: p.read_bytes() for p in images.iterdir()} == before
    # an image of one's own named like an output ("wafer map") was skipped, then overwritten by wafer.png's map
    own = tmp_path / "own"
    own.mkdir()
    (own / "wafer.png").write_bytes((images / "000.png").read_bytes())
    (own / "wafer_map.png").write_bytes((images / "001.png").read_bytes())
    code, err = run_main(["detect", str(model), str(own), "--out", str(own)], capsys)
    assert code == 2 and "not scored (wafer_map.png)" in err[0] and err[1].startswith(
        f"error: {own / 'wafer_map.png'}: exists"), err
    assert (own / "wafer_map.png").read_bytes() == (images / "001.png").read_bytes()
    assert sorted(p.name for p in own.iterdir()) == ["wafer.png", "wafer_map.png"]


def test_unreadable_and_empty_images_are_named_and_the_others_processed(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    images = tmp_path / "images"
    images.mkdir()
    (images / "empty.png").write_bytes(b"")
    (images / "text.png").write_bytes(b"not an image")
    (images / "good.png").write_bytes((category / "test" / "good" / "000.png").read_bytes())
    code, err = run_main(["detect", str(model), str(images), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and len(err) == 2, err
    assert "empty.png" in err[0] and "text.png" in err[1]
    assert not any("pip install" in line for line in err)
    assert [Path(row["path"]).name for row in read_rows(tmp_path / "d")] == ["good.png"]


def test_inputs_none_of_which_can_be_read_leave_nothing_to_block_the_corrected_run(tiny_model, tmp_path, capsys):
    # a tester's: an empty detections.csv of such a run refused the corrected command ("holds another run")
    category, model = tiny_model
    (tmp_path / "notes.txt").write_text("hi")
    code, err = run_main(["detect", str(model), str(tmp_path / "notes.txt"), "--out", str(tmp_path / "d")], capsys)
    assert (code, err) == (2, [f"error: {tmp_path / 'notes.txt'}: could not read it as an image (.txt is not an "
                               "image file type)"])
    assert not (tmp_path / "d").exists()
    good = category / "test" / "good" / "000.png"
    assert run_main(["detect", str(model), str(good), "--out", str(tmp_path / "d")], capsys)[0] == 0
    assert [row["path"] for row in read_rows(tmp_path / "d")] == [str(good)]


def test_a_rerun_whose_one_image_became_unreadable_keeps_the_run_record(tiny_model, tmp_path, capsys):
    # a tester's: the no-rows branch deleted an earlier successful run's detections.csv and run record
    category, model = tiny_model
    image = tmp_path / "a.png"
    shutil.copyfile(category / "test" / "good" / "000.png", image)
    argv = ["detect", str(model), str(image), "--out", str(tmp_path / "d")]
    assert run_main(argv, capsys)[0] == 0
    image.write_bytes(image.read_bytes()[:200])  # truncated: its map no longer shows this file
    code, err = run_main(argv, capsys)
    assert code == 2 and "a.png" in err[-1]
    assert (tmp_path / "d" / "detections.run.json").exists() and read_rows(tmp_path / "d") == []
    shutil.copyfile(category / "test" / "good" / "000.png", image)
    assert run_main(argv, capsys)[0] == 0 and len(read_rows(tmp_path / "d")) == 1


def test_a_gone_images_outputs_go_though_another_input_is_missing(tiny_model, tmp_path, capsys):
    # a tester's: with any input missing, the maps of an image deleted from a folder that was listed stayed behind
    category, model = tiny_model
    images = tmp_path / "images"
    shutil.copytree(category / "test" / "stroke", images)
    argv = ["detect", str(model), str(images), str(tmp_path / "nothere.png"), "--out", str(tmp_path / "d")]
    assert run_main(argv, capsys)[0] == 2  # the missing file named; the folder's images scored
    (images / "002.png").unlink()
    assert run_main(argv, capsys)[0] == 2
    assert visible_files(tmp_path / "d", "_map.png") == ["000_map.png", "001_map.png"]
    assert visible_files(tmp_path / "d", "_overlay.png") == ["000_overlay.png", "001_overlay.png"]


@pytest.mark.parametrize("option, value", [("--threshold", "0"), ("--threshold", "-1"), ("--threshold", "nan"),
                                           ("--threshold", "inf"), ("--threshold", "7"), ("--min-defect-area", "0")])
def test_a_bad_option_is_named_before_any_work(tiny_model, tmp_path, capsys, option, value):
    category, model = tiny_model
    out = tmp_path / "d"
    code, err = run_main(["detect", str(model), str(category), "--out", str(out), option, value], capsys)
    assert code == 2 and len(err) == 1 and option in err[0], err
    assert not out.exists()


def test_an_out_folder_that_cannot_be_made_is_named(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    (tmp_path / "file").write_text("")
    code, err = run_main(["detect", str(model), str(category), "--out", str(tmp_path / "file" / "d")], capsys)
    assert code == 2 and len(err) == 1 and "is a file" in err[0], err


def broken(manifest):
    """Manifests with a field of the wrong type, each with what the error must name."""
    detection = manifest["detection"]
    without_preset = {k: v for k, v in detection.items() if k != "preset"}
    return [
        {**manifest, "detection": {**detection, "threshold": "0.5"}},
        {**manifest, "detection": {**detection, "threshold": None}},
        {**manifest, "detection": {**detection, "min_defect_area": 1.5}},
        {**manifest, "detection": {**detection, "stride": "30"}},
        {**manifest, "detection": without_preset},
        {**manifest, "detection": {**detection, "preset": {**detection["preset"], "residual": 3}}},
        {**manifest, "detection": [1, 2]},
        {**manifest, "architecture": ["ConvAutoencoder"]},
        [manifest],
        "model",
    ]


def test_a_manifest_of_the_wrong_types_is_named(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    manifest = json.loads(model.with_name("parts.json").read_text())
    weights = model.with_name("parts.weights.h5").read_bytes()
    for i, wrong in enumerate(broken(manifest)):
        stem = tmp_path / f"m{i}"
        stem.with_name(f"m{i}.weights.h5").write_bytes(weights)
        stem.with_name(f"m{i}.json").write_text(json.dumps(wrong))
        code, err = run_main(["detect", str(stem), str(category / "test" / "good"), "--out", str(tmp_path / f"d{i}"),
                              "--threshold", "0.5"], capsys)
        assert code == 2 and len(err) == 1 and f"m{i}.json" in err[0], (wrong, err)


# The MVTec AD models read images resized to 256 px, as they were trained; the NanoTWICE models at their size.
@pytest.mark.parametrize("name, patch_size, channels, map_side", [
    ("nanotwice/ssim_ae", 128, 1, 128), ("nanotwice/l2_ae", 128, 1, 128), ("mvtec/grid-ssim-cvpr2019", 128, 1, 256),
    ("mvtec/bottle-l2-cvpr2019", 256, 3, 256),
])
def test_the_study_models_detect_at_a_given_threshold(tmp_path, capsys, name, patch_size, channels, map_side):
    model = REPO_ROOT / "models" / name
    image = tmp_path / "noise.png"
    noise = np.random.default_rng(0).integers(0, 256, (patch_size, patch_size, channels), dtype=np.uint8)
    skimage.io.imsave(image, noise.squeeze(), check_contrast=False)
    code, err = run_main(["detect", str(model), str(image), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and len(err) == 1 and "--threshold" in err[0] and f"{Path(name).name}.json" in err[0], err
    assert not (tmp_path / "d").exists()
    code, err = run_main(["detect", str(model), str(image), "--out", str(tmp_path / "e"), "--threshold", "0.5"], capsys)
    assert code == 0
    (row,) = read_rows(tmp_path / "e")
    assert float(row["score"]) > 0 and row["verdict"] in ("good", "defective")
    assert skimage.io.imread(tmp_path / "e" / row["anomaly_map"]).shape[:2] == (map_side, map_side)
    # a tester's: the 256 px maps of a model that resizes were taken for a fault; it is said once, not per image
    said = [line for line in err if "resizes every image" in line]
    assert said == ([f"warning: {model}: resizes every image to 256x256 px, as it was trained: maps, overlays and "
                     "defect areas are in those pixels"] if name.startswith("mvtec") else [])


def _detect_until(tiny_model, tmp_path, rows, stop):
    """``python -m ssimlib detect`` of 60 images into ``tmp_path/d``, sent signal ``stop`` once its CSV has ``rows``
    rows; its exit status, stderr and --out."""
    category, model = tiny_model
    images = tmp_path / "images"
    images.mkdir()
    board = skimage.io.imread(category / "test" / "stroke" / "000.png")
    for i in range(60):
        skimage.io.imsave(images / f"{i:03d}.png", np.roll(board, i, axis=1), check_contrast=False)
    out = tmp_path / "d"
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.Popen([sys.executable, "-m", "ssimlib", "detect", str(model), str(images), "--out", str(out)],
                           env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 600
        while not ((out / "detections.csv").exists() and len(read_rows(out)) >= rows):
            assert run.poll() is None, run.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        run.send_signal(stop)
        err = run.stderr.read()
        return run.wait(), err, out
    finally:
        run.kill()
        run.stderr.close()


def test_sigterm_ends_in_one_line_and_releases_the_lock(tiny_model, tmp_path):
    # a tester's: kill (SIGTERM) ended detect with status 143 and not a word, detections.lock left in --out
    status, err, out = _detect_until(tiny_model, tmp_path, 2, signal.SIGTERM)
    assert status == 143 and "Traceback" not in err and err.strip().splitlines()[-1] == (
        "terminated: detections.csv in --out lists the images finished, each with its map and overlay; the same "
        "command continues with the others"), err
    assert not (out / "detections.lock").exists() and 2 <= len(read_rows(out)) < 60


def test_a_killed_run_leaves_a_csv_true_to_its_maps(tiny_model, tmp_path):
    status, _, out = _detect_until(tiny_model, tmp_path, 3, signal.SIGKILL)
    assert status == -signal.SIGKILL, "the run ended before it was killed"
    model, images = tiny_model[1], tmp_path / "images"
    rows = read_rows(out)
    assert 3 <= len(rows) < 60
    assert set(visible_files(out, "_map.png")) - {row["anomaly_map"] for row in rows} <= {f"{len(rows):03d}_map.png"}
    assert visible_files(out, "_overlay.png") == sorted(row["overlay"] for row in rows)
    # The same command continues: the finished maps are kept (not written again), the others added, and the
    # result is that of one uninterrupted run.
    kept = {row["anomaly_map"]: (out / row["anomaly_map"]).stat().st_mtime_ns for row in rows}
    assert main(["detect", str(model), str(images), "--out", str(out)]) == 0
    assert {name: (out / name).stat().st_mtime_ns for name in kept} == kept
    whole = tmp_path / "whole"
    assert main(["detect", str(model), str(images), "--out", str(whole)]) == 0
    assert read_rows(out) == read_rows(whole) and len(read_rows(out)) == 60
    for row in read_rows(whole):
        for key in ("anomaly_map", "overlay"):
            np.testing.assert_array_equal(skimage.io.imread(out / row[key]), skimage.io.imread(whole / row[key]))


def test_a_finished_run_run_again_computes_nothing_and_another_is_told_what_differs(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    good = tmp_path / "good"
    shutil.copytree(category / "test" / "good", good)
    out = tmp_path / "d"
    assert main(["detect", str(model), str(good), "--out", str(out)]) == 0
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*_map.png")}
    assert main(["detect", str(model), str(good), "--out", str(out)]) == 0
    assert "(2 of them done by an earlier run of this command, kept)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*_map.png")} == before and len(read_rows(out)) == 2
    # An image changed since its map was written (a camera folder reusing names) is done again.
    stroke = category / "test" / "stroke" / "000.png"
    shutil.copyfile(stroke, good / "000.png")
    assert main(["detect", str(model), str(good), "--out", str(out)]) == 0
    assert "(1 of them done by an earlier run" in capsys.readouterr().out
    fresh = tmp_path / "fresh"
    assert main(["detect", str(model), str(good), "--out", str(fresh)]) == 0
    by_path = lambda rows: sorted(rows, key=lambda row: row["path"])  # noqa: E731
    assert by_path(read_rows(out)) == by_path(read_rows(fresh))
    code, err = run_main(["detect", str(model), str(good), "--out", str(out), "--threshold", "0.3"], capsys)
    assert code == 2 and len(err) == 1 and "another run (it differs in threshold)" in err[0], err
    (out / "detections.run.json").unlink()  # detections of a version that recorded no run
    code, err = run_main(["detect", str(model), str(good), "--out", str(out)], capsys)
    assert code == 2 and "one that recorded no settings" in err[0], err


def test_an_image_replaced_by_an_older_copy_is_done_again_and_an_older_csv_still_resumes(tiny_model, tmp_path,
                                                                                          capsys):
    category, model = tiny_model
    good = tmp_path / "good"
    shutil.copytree(category / "test" / "good", good)
    out = tmp_path / "d"
    assert main(["detect", str(model), str(good), "--out", str(out)]) == 0
    rows = read_rows(out)
    assert all(row["image_sha256"] == hashlib.sha256((good / Path(row["path"]).name).read_bytes()).hexdigest()
               for row in rows)
    # `cp -p` of an older file keeps its time stamp, older than the map: told by the file's contents
    stroke = category / "test" / "stroke" / "000.png"
    shutil.copy2(stroke, good / "000.png")
    os.utime(good / "000.png", ns=(1, 1))
    capsys.readouterr()
    assert main(["detect", str(model), str(good), "--out", str(out)]) == 0
    assert "(1 of them done by an earlier run" in capsys.readouterr().out
    fresh = tmp_path / "fresh"
    assert main(["detect", str(model), str(good), "--out", str(fresh)]) == 0
    assert read_rows(out) == read_rows(fresh)  # 000.png redone after 001.png kept, listed in the order given
    # a detections.csv of a version without the column: its rows are kept while no image is newer than its map,
    # and get their hashes
    with open(out / "detections.csv", newline="") as file:
        lines = [line.rsplit(",", 1)[0] for line in file.read().splitlines()]
    (out / "detections.csv").write_text("\n".join(lines) + "\n")
    assert main(["detect", str(model), str(good), "--out", str(out)]) == 0
    assert "(2 of them done by an earlier run" in capsys.readouterr().out
    assert read_rows(out) == read_rows(fresh)  # the hashes written in


def test_an_image_replaced_while_it_is_scored_is_done_again_by_the_next_run(tiny_model, tmp_path, monkeypatch,
                                                                            capsys):
    from ssimlib.apps import own_detection

    category, model = tiny_model
    images = tmp_path / "images"
    shutil.copytree(category / "test" / "good", images)
    other = category / "test" / "stroke" / "000.png"
    read = own_detection.read_image
    swapped = []

    def read_after_a_swap(path, **kwargs):  # the camera writes a new 000.png between the hash and the read
        if Path(path).name == "000.png" and not swapped:
            swapped.append(shutil.copyfile(other, path))
        return read(path, **kwargs)

    out = tmp_path / "d"
    with monkeypatch.context() as patch:
        patch.setattr(own_detection, "read_image", read_after_a_swap)
        assert main(["detect", str(model), str(images), "--out", str(out)]) == 0
    assert swapped
    capsys.readouterr()
    assert main(["detect", str(model), str(images), "--out", str(out)]) == 0
    assert "(1 of them done by an earlier run" in capsys.readouterr().out  # 001.png kept, 000.png done again
    fresh = tmp_path / "fresh"
    assert main(["detect", str(model), str(images), "--out", str(fresh)]) == 0
    assert read_rows(out) == read_rows(fresh)  # 001.png kept, 000.png redone: listed in the order given


def test_a_run_continued_elsewhere_names_the_images_as_given_now_and_drops_the_maps_of_the_gone(
        tiny_model, tmp_path, monkeypatch, capsys):
    category, model = tiny_model
    images = tmp_path / "images"
    shutil.copytree(category / "test" / "stroke", images)
    out = tmp_path / "d"
    monkeypatch.chdir(tmp_path)
    assert main(["detect", str(model), "images", "--out", "d", "--report"]) == 0
    (images / "002.png").unlink()  # gone since: its map and overlay go with its row
    monkeypatch.chdir(images)
    capsys.readouterr()
    assert main(["detect", str(model), ".", "--out", str(out)]) == 0  # the same inputs, typed from elsewhere
    assert "(2 of them done by an earlier run" in capsys.readouterr().out
    rows = read_rows(out)
    assert sorted(row["path"] for row in rows) == ["000.png", "001.png"]
    assert visible_files(out, "_map.png") == ["000_map.png", "001_map.png"]
    assert visible_files(out, "_overlay.png") == ["000_overlay.png", "001_overlay.png"]
    assert "002.png" not in (out / "report.html").read_text() and len(list((out / "report").iterdir())) == 2 * 3


def test_a_stopped_continued_run_leaves_no_report_of_older_maps(tiny_model, tmp_path, monkeypatch, capsys):
    from ssimlib.apps.scoring import Detector

    category, model = tiny_model
    images = tmp_path / "images"
    shutil.copytree(category / "test" / "good", images)
    out = tmp_path / "d"
    assert main(["detect", str(model), str(images), "--out", str(out), "--report"]) == 0
    shutil.copyfile(category / "test" / "stroke" / "000.png", images / "000.png")

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Detector, "anomaly_map", stopped)
        assert main(["detect", str(model), str(images), "--out", str(out)]) == 130
    assert "out of date" in (out / "report.html").read_text() and not any((out / "report").iterdir())
    assert len(read_rows(out)) == 1  # 001.png's; 000.png's map of the old image is gone with its row
    assert visible_files(out, "_map.png") == ["001_map.png"]
    capsys.readouterr()
    assert main(["detect", str(model), str(images), "--out", str(out)]) == 0
    assert "(rewritten without --report" in capsys.readouterr().out
    fresh = tmp_path / "fresh"
    assert main(["detect", str(model), str(images), "--out", str(fresh), "--report"]) == 0
    assert (out / "report.html").read_text() == (fresh / "report.html").read_text()


def test_images_far_darker_or_brighter_than_the_training_images_are_warned_of(tiny_model, tmp_path, capsys):
    # a tester's: a model trained on dim 12-bit data marked every pixel of 8-bit images, silently
    category, model = tiny_model
    images = tmp_path / "images"
    images.mkdir()
    board = skimage.io.imread(category / "test" / "good" / "000.png")  # 64 px, as the training boards
    skimage.io.imsave(images / "same.png", board, check_contrast=False)
    skimage.io.imsave(images / "large.png", np.kron(board, np.ones((3, 3), board.dtype)), check_contrast=False)
    skimage.io.imsave(images / "dark.png", (board * 0.2).astype(board.dtype), check_contrast=False)
    train_means = [skimage.io.imread(p).mean() / 255 for p in sorted((category / "train" / "good").glob("*.png"))]
    assert 0.2 * max(train_means) < min(train_means) - 0.15  # the dark copy lies outside by more than the slack
    code, err = run_main(["detect", str(model), str(images), "--out", str(tmp_path / "d")], capsys)
    assert code == 0
    rows = {Path(row["path"]).name: row["warnings"] for row in read_rows(tmp_path / "d")}
    assert rows["same.png"] == "" and rows["large.png"] == ""  # a size is no scale: a crop may be any size
    assert rows["dark.png"].startswith("mean gray value 0.") and "outside the model's training images'" in rows[
        "dark.png"]


def test_a_warning_about_an_image_is_given_once_with_a_report(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    images = tmp_path / "images"
    images.mkdir()
    board = skimage.io.imread(category / "test" / "good" / "000.png").astype(np.uint16) * 16  # 12-bit data in 16
    skimage.io.imsave(images / "dim.png", board, check_contrast=False)
    code, err = run_main(["detect", str(model), str(images), "--out", str(tmp_path / "d"), "--report"], capsys)
    assert code == 0 and sum("16-bit pixels reach only" in line for line in err) == 1, err
    # and the report shows it under the image's name (a tester's: the report alone showed a confident verdict)
    page = (tmp_path / "d" / "report.html").read_text()
    assert page.count("16-bit pixels reach only") == 1 and "images warned of" in page


def test_warnings_counted_on_the_command_line_are_named_in_the_csv(tiny_model, tmp_path, capsys):
    # a tester's: after the first three, "3 more files (not named)", and nothing said which images they were
    category, model = tiny_model
    images = tmp_path / "images"
    images.mkdir()
    board = skimage.io.imread(category / "test" / "good" / "000.png")
    for i in range(5):
        skimage.io.imsave(images / f"c{i}.png", np.stack([board] * 3, axis=-1), check_contrast=False)  # colour
    skimage.io.imsave(images / "gray.png", board, check_contrast=False)
    code, err = run_main(["detect", str(model), str(images), "--out", str(tmp_path / "d")], capsys)
    colour = "colour image converted to gray for a gray (1-channel) model"
    assert code == 0 and sum(colour in line for line in err) == 4, err
    assert err[-1] == f"warning: 2 more files (named in detections.csv): {colour}", err
    notes = {Path(row["path"]).name: row["warnings"] for row in read_rows(tmp_path / "d")}
    assert notes == {**{f"c{i}.png": colour for i in range(5)}, "gray.png": ""}, notes


def test_a_report_leaves_the_other_files_of_its_thumbnail_folder_alone(tiny_model, tmp_path):
    # a new report removed the whole report/ folder: a user's notes, or maps of an input folder named report
    category, model = tiny_model
    out = tmp_path / "d"
    (out / "report").mkdir(parents=True)
    (out / "report" / "notes.txt").write_text("mine")
    for _ in range(2):  # a second run continues into it and writes the report again
        assert main(["detect", str(model), str(category / "test" / "good"), "--out", str(out), "--report"]) == 0
    assert (out / "report" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (out / "report").iterdir()) == sorted(
        ["notes.txt"] + [f"0000{i}_{what}.jpg" for i in (1, 2) for what in ("input", "map", "overlay")])


def test_a_name_a_spreadsheet_would_run_is_written_as_text_and_read_back(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    images = tmp_path / "images"
    images.mkdir()
    shutil.copyfile(category / "test" / "good" / "000.png", images / "=1+2.png")
    skimage.io.imsave(images / "tiny.png", np.full((3, 3), 128, np.uint8), check_contrast=False)
    out = tmp_path / "d"
    code, err = run_main(["detect", str(model), str(images), "--out", str(out)], capsys)
    assert code == 0
    # 9 pixels can never make a defect of the model's 16: said, not a silent "good"
    assert f"warning: {images / 'tiny.png'}: image of 9 pixels, fewer than the smallest defect area (16 px): no " \
           "defect can be found in it" in err, err
    formula = next(row for row in read_rows(out) if "1+2" in row["anomaly_map"])
    assert formula["anomaly_map"] == "'=1+2_map.png" and formula["overlay"] == "'=1+2_overlay.png"
    assert main(["detect", str(model), str(images), "--out", str(out)]) == 0  # the row is read back as its file
    assert "(2 of them done by an earlier run of this command, kept)" in capsys.readouterr().out


def test_a_cell_written_safe_reads_back_as_it_was():
    from ssimlib.apps.spreadsheet import plain_row, safe_row

    for text in ("=1+2.png", "'=a.png", "'plain.png", "a.png", "-x.png", "@y.png", "+z.png"):
        assert plain_row(safe_row({"name": text}))["name"] == text
    assert safe_row({"name": "=1+2.png", "score": -1.5}) == {"name": "'=1+2.png", "score": -1.5}


def test_masks_beside_the_images_are_not_scored_as_parts(tiny_model, tmp_path, capsys):
    category, model = tiny_model
    images = tmp_path / "scratch"
    shutil.copytree(category / "test" / "stroke", images)
    for image in sorted(images.iterdir())[:2]:
        skimage.io.imsave(images / f"{image.stem}_mask.png", np.zeros((64, 64), np.uint8), check_contrast=False)
    shutil.copyfile(images / "002.png", images / "gas-mask.png")  # a part of that name, no image gas.* beside it
    code, err = run_main(["detect", str(model), str(images), "--out", str(tmp_path / "d")], capsys)
    assert code == 0 and len(read_rows(tmp_path / "d")) == 4
    assert f"warning: {images}: 2 files named like defect masks, not scored (000_mask.png, 001_mask.png; give one " \
           "as a file to score it; evaluate scores images against their masks)" in err, err


def test_a_model_named_with_its_file_suffix_is_found(tiny_model, tmp_path):
    # `detect m.json` looked for m.json.json and advised training a model that exists
    category, model = tiny_model
    for suffix in (".json", ".weights.h5"):
        out = tmp_path / suffix.strip(".")
        assert main(["detect", f"{model}{suffix}", str(category / "test" / "good"), "--out", str(out)]) == 0
        assert len(read_rows(out)) == 2


def test_an_image_whose_map_lies_above_the_threshold_over_most_of_it_is_warned_of(monkeypatch):
    # other-scale texture (another magnification), focus or lighting mark the whole image, not a defect
    from ssimlib.apps import scoring

    detector = scoring.Detector(network=type("Net", (), {"channels": 1})(), preset=None, threshold=0.5, min_area=1,
                                stride=1, weights_sha256="")
    for share, warned in ((0.5, False), (0.51, True)):
        above = np.zeros(10_000, np.float32)
        above[: round(share * 10_000)] = 0.9
        monkeypatch.setattr(scoring, "anomaly_map", lambda *args: above.reshape(100, 100))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            detector.anomaly_map(np.full((100, 100, 1), 0.5, np.float32), "x.png")
        messages = [str(w.message) for w in caught]
        assert messages == ([f"x.png: {share:.0%} of its pixels lie above the threshold: unlike the model's training "
                             "images as a whole (another magnification, focus or lighting?) more than a defect?"]
                            if warned else []), share


def test_an_evaluations_curves_and_a_reports_thumbnails_are_no_parts_to_score(tmp_path):
    # a tester's: detect e1/* scored e1/ev/roc.png and pro.png (evaluate's curves) as parts, and detect on a report's
    # thumbnails folder scored 18 thumbnails, all exit 0
    from ssimlib.apps import own_detection
    from ssimlib.apps.labelled import EVALUATION_FILES, EVALUATION_RUN

    board = (np.indices((64, 64)).sum(0) // 8 % 2 * 255).astype(np.uint8)
    for name in ("parts/a.png", "ev/roc.png", "ev/pro.png", "ev/images/flat/d0_map.png", "d/report/00001_input.jpg",
                 "d/report/00001_map.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        skimage.io.imsave(tmp_path / name, board, check_contrast=False)
    for name in (*EVALUATION_FILES, EVALUATION_RUN):
        (tmp_path / "ev" / name).write_text("")
    (tmp_path / "d" / "report.html").write_text("")
    with pytest.warns(UserWarning) as caught:
        files, bad = own_detection._inputs([tmp_path / "parts", tmp_path / "ev", tmp_path / "ev" / "images" / "flat",
                                            tmp_path / "d" / "report"], tmp_path / "out")
    assert files == [tmp_path / "parts" / "a.png"] and bad == []
    evaluation = f"an earlier evaluation's output ({', '.join(EVALUATION_FILES)}), not scored"
    assert {str(w.message) for w in caught} == {
        f"{tmp_path / 'ev'}: {evaluation}",
        f"{tmp_path / 'ev' / 'images' / 'flat'}: below an earlier evaluation's output ({tmp_path / 'ev'}), not scored",
        f"{tmp_path / 'd' / 'report'}: a report's thumbnails (report.html beside it), not scored"}


def test_inputs_that_hold_no_image_to_score_are_one_line_that_says_so(tiny_model, tmp_path, capsys):
    # a second tester's: an evaluation's output given alone printed its warning, then "error: " and nothing more
    from ssimlib.apps.labelled import EVALUATION_FILES

    category, model = tiny_model
    for name in EVALUATION_FILES:
        (tmp_path / "ev" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "ev" / name).write_text("")
    code, err = run_main(["detect", str(model), str(tmp_path / "ev"), "--out", str(tmp_path / "d")], capsys)
    assert code == 2 and err[-1] == "error: no image to score among the inputs (warned of above)", err

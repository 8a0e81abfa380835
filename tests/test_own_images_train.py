"""`ssimlib train` from the user's side: options refused up front, one run per --out, the lock, kills, seeds."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.io

from ssimlib import artifacts
from ssimlib.apps.cli import main
from ssimlib.models import ConvAutoencoder
from ssimlib.synthetic import write_synthetic_category

REPO = Path(__file__).resolve().parents[1]
TINY = ["--patch-size", "32", "--latent-dim", "8", "--epochs", "2", "--n-patches", "64", "--batch-size", "16",
        "--validation-fraction", "0.25", "--min-defect-area", "16"]


def run_main(argv, capsys):
    """Exit status and the stderr lines of ``python -m ssimlib ARGV``, run in this process."""
    code = main(argv)
    return code, capsys.readouterr().err.strip().splitlines()


def cli_process(*argv):
    """``python -m ssimlib ARGV`` started in a process of its own, with this work tree's package."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen([sys.executable, "-m", "ssimlib", *argv], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def files_in(folder):
    return sorted(p.name for p in Path(folder).iterdir())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Two different generated categories of 8 defect-free 64 px boards each."""
    root = tmp_path_factory.mktemp("data")
    return (write_synthetic_category(root, "a", n_train=8, size=64, seed=0),
            write_synthetic_category(root, "b", n_train=8, size=64, seed=1))


def with_option(argv, option, value):
    """``argv`` with ``option`` set to ``value`` (replaced where it is already there)."""
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = value
        return argv
    return [*argv, option, value]


@pytest.mark.parametrize("option, value", [
    ("--epochs", "0"), ("--patch-size", "7"), ("--patch-size", "48"), ("--patch-size", "0"),
    ("--latent-dim", "0"), ("--batch-size", "0"), ("--n-patches", "-5"), ("--validation-fraction", "0"),
    ("--validation-fraction", "1"), ("--validation-fraction", "nan"), ("--min-defect-area", "0"),
    ("--batch-size", "65"),  # above TINY's --n-patches 64: was taken without a word
    # more memory than any machine has (a bottleneck of 6,000 TiB, patches of 3.7 PiB): were tracebacks (exit 1)
    ("--latent-dim", "100000000000"), ("--n-patches", "1000000000000"),
])
def test_a_bad_option_is_named_before_any_work(tmp_path, capsys, option, value):
    # The data folder does not exist: a run that checked it first would name it instead of the option.
    argv = ["train", str(tmp_path / "no_data"), "--out", str(tmp_path / "models" / "m"),
            *with_option(TINY, option, value)]
    code, err = run_main(argv, capsys)
    assert code == 2 and len(err) == 1 and option in err[0], err
    assert not (tmp_path / "models").exists()


def test_a_smallest_defect_larger_than_the_images_is_refused(data, tmp_path, capsys):
    # a tester's: --min-defect-area 100000 on 256 px images saved a model whose threshold was its maps' minimum
    argv = ["train", str(data[0]), "--out", str(tmp_path / "models" / "m"), *with_option(TINY, "--min-defect-area",
                                                                                          str(64 * 64 + 1))]
    code, err = run_main(argv, capsys)
    assert (code, err) == (2, ["error: --min-defect-area 4097 is larger than the images (the smallest: 64x64 = 4096 "
                               "px); choose fewer pixels"])
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_folder_of_subfolders_is_named_with_them(data, tmp_path, capsys):
    # a tester's: "found none" said nothing of the subfolder that held the images (detect names it)
    shutil.copytree(data[0] / "train" / "good", tmp_path / "nested" / "sub")
    code, err = run_main(["train", str(tmp_path / "nested"), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert code == 2 and len(err) == 1 and err[0].endswith(
        "found none (only subfolders: sub; train does not search below a folder: give the one of defect-free "
        "images)"), err


def test_images_in_a_subfolder_beside_the_top_s_are_named_as_not_trained_on(data, tmp_path):
    # a tester's: nested/n0.png beside the top's images was left out without a word
    from ssimlib.apps.own_images import defect_free_images

    shutil.copytree(data[0] / "train" / "good", tmp_path / "top")
    shutil.copytree(data[0] / "train" / "good", tmp_path / "top" / "nested")
    (tmp_path / "top" / "notes").mkdir()  # no images: nothing to say
    (tmp_path / "top" / "notes" / "a.txt").write_text("")
    (tmp_path / "top" / "self").symlink_to(tmp_path / "top")  # the folder itself: its images are trained on
    with pytest.warns(UserWarning, match=r"top: images in its subfolder nested not trained on \(train reads the "
                                         r"images at the top of the folder it is given\)$"):
        images, paths, _ = defect_free_images(tmp_path / "top")
    assert sorted(p.name for p in paths) == sorted(p.name for p in (data[0] / "train" / "good").iterdir())


def test_an_out_folder_that_cannot_be_made_is_named(data, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    code, err = run_main(["train", str(data[0]), "--out", str(tmp_path / "file" / "m"), *TINY], capsys)
    assert code == 2 and len(err) == 1 and "--out" in err[0] and "is a file" in err[0], err
    if os.geteuid() == 0:
        return  # root writes anywhere
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, err = run_main(["train", str(data[0]), "--out", str(locked / "m"), *TINY], capsys)
    assert code == 2 and len(err) == 1 and "cannot write" in err[0], err


def test_another_run_on_one_out_is_refused_and_restart_starts_over(data, tmp_path, capsys):
    a, b = data
    out = tmp_path / "m"
    assert main(["train", str(a), "--out", str(out), *TINY]) == 0
    first = out.with_name("m.weights.h5").read_bytes(), out.with_name("m.json").read_bytes()
    other_runs = [
        ["train", str(b), "--out", str(out), *TINY],  # other images
        ["train", str(a), "--out", str(out), *with_option(TINY, "--patch-size", "64")],
        ["train", str(a), "--out", str(out), *with_option(TINY, "--latent-dim", "4")],
        ["train", str(a), "--out", str(out), *with_option(TINY, "--epochs", "1")],  # fewer than it has
        ["train", str(a), "--out", str(out), *TINY, "--seed", "1"],
        ["train", str(a), "--out", str(out), *TINY, "--kind", "object"],
        ["train", str(a), "--out", str(out), *TINY, "--color"],
    ]
    capsys.readouterr()
    for argv in other_runs:
        code, err = run_main(argv, capsys)
        assert code == 2 and len(err) == 1 and "--restart" in err[0], (argv, err)
        assert (out.with_name("m.weights.h5").read_bytes(), out.with_name("m.json").read_bytes()) == first
    # Same names, other contents: still another run.
    image = a / "train" / "good" / "000.png"
    original = image.read_bytes()
    skimage.io.imsave(image, 255 - skimage.io.imread(image), check_contrast=False)
    try:
        code, err = run_main(["train", str(a), "--out", str(out), *TINY], capsys)
        assert code == 2 and "--restart" in err[0] and "data_sha256" in err[0], err
        # asked for more epochs too: what is in the way is the data, not the epochs (more of them alone continue)
        code, err = run_main(["train", str(a), "--out", str(out), *TINY, "--epochs", "9"], capsys)
        assert code == 2 and "(it differs in data_sha256)" in err[0], err
    finally:
        image.write_bytes(original)
    # The same command again is the same run, finished: it trains nothing, writes nothing and says so (it printed
    # "model written to" as if it had trained)
    capsys.readouterr()
    assert main(["train", str(a), "--out", str(out), *TINY]) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert (out.with_name("m.weights.h5").read_bytes(), out.with_name("m.json").read_bytes()) == first
    # So is the model copied elsewhere without its checkpoint (it was trained again from scratch and rewritten);
    # more epochs of it cannot go on without the checkpoint (it was refused as "another run (it differs in epochs)")
    copy = tmp_path / "copy" / "m"
    copy.parent.mkdir()
    for suffix in (".json", ".weights.h5"):
        shutil.copy(out.with_name("m" + suffix), copy.with_name("m" + suffix))
    assert main(["train", str(a), "--out", str(copy), *TINY]) == 0
    assert "nothing to train" in capsys.readouterr().out and files_in(copy.parent) == ["m.json", "m.weights.h5"]
    code, err = run_main(["train", str(a), "--out", str(copy), *with_option(TINY, "--epochs", "3")], capsys)
    assert code == 2 and len(err) == 1 and "model of 2 epochs but not its checkpoint" in err[0], err
    shutil.rmtree(copy.parent)
    # More epochs of the same run continue its checkpoint, as one longer run would have gone
    assert main(["train", str(a), "--out", str(out), *with_option(TINY, "--epochs", "3")]) == 0
    assert main(["train", str(a), "--out", str(tmp_path / "straight" / "m"), *with_option(TINY, "--epochs", "3")]) == 0
    continued, straight = (json.loads(p.read_text())["training"] for p in (out.with_name("m.json"),
                                                                           tmp_path / "straight" / "m.json"))
    assert continued["epochs_done"] == 3 and continued["loss"] == pytest.approx(straight["loss"], rel=1e-5)
    assert main(["train", str(b), "--out", str(out), *TINY, "--restart"]) == 0
    manifest = json.loads(out.with_name("m.json").read_text())
    assert manifest["training"]["data"] == "b"  # the folder by name: no absolute path of this machine
    assert files_in(tmp_path) == ["m.checkpoint", "m.json", "m.weights.h5", "straight"]


def test_a_model_without_a_run_is_not_resumed(data, tmp_path, capsys):
    out = tmp_path / "m"
    model = ConvAutoencoder(32, 1, 8)
    artifacts.save_model(model, out, artifacts.architecture_of(model), {"epochs_done": 1, "loss": [0.5]})
    code, err = run_main(["train", str(data[0]), "--out", str(out), *TINY], capsys)
    assert code == 2 and len(err) == 1 and "m.json" in err[0] and "--restart" in err[0], err


def test_the_same_seed_repeats_the_run(data, tmp_path):
    losses = []
    for out, seed in (("m1", "3"), ("m2", "3"), ("m3", "4")):
        assert main(["train", str(data[0]), "--out", str(tmp_path / out), *TINY, "--seed", seed]) == 0
        losses.append(json.loads((tmp_path / f"{out}.json").read_text())["training"]["loss"])
    assert losses[0] == losses[1]
    assert losses[0][-1] != losses[2][-1]


def wait_for(path, process, seconds=600):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_a_second_run_waits_its_turn_and_a_killed_run_resumes(data, tmp_path, capsys):
    out = tmp_path / "m"
    # 3 epochs of 1,024 patches: about a second each, time to try a second run and kill the first after epoch 1.
    argv = ["train", str(data[0]), "--out", str(out),
            *with_option(with_option(TINY, "--epochs", "3"), "--n-patches", "1024")]
    first = cli_process(*argv)
    try:
        wait_for(out.with_name("m.checkpoint") / "state.json", first)
        code, err = run_main(argv, capsys)
        assert code == 2 and len(err) == 1 and f"PID {first.pid}" in err[0] and "m.lock" in err[0], err
        assert first.poll() is None, "the first run ended before it could be killed"
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
        first.stderr.close()
    killed_losses = json.loads((out.with_name("m.checkpoint") / "state.json").read_text())["history"]["loss"]
    assert out.with_name("m.lock").exists() and 1 <= len(killed_losses) < 3
    assert main(argv) == 0  # the dead run's lock is taken over and its checkpoint resumed
    manifest = json.loads(out.with_name("m.json").read_text())
    assert manifest["training"]["loss"][: len(killed_losses)] == killed_losses
    assert len(manifest["training"]["loss"]) == 3
    assert files_in(tmp_path) == ["m.checkpoint", "m.json", "m.weights.h5"]


def test_ctrl_c_ends_in_one_line_and_the_same_command_resumes(data, tmp_path, capsys):
    # Ctrl-C printed a 20-frame KeyboardInterrupt traceback and did not say that the checkpoint is kept
    out = tmp_path / "m"
    argv = ["train", str(data[0]), "--out", str(out),
            *with_option(with_option(TINY, "--epochs", "6"), "--n-patches", "1024")]
    run = cli_process(*argv)
    try:
        wait_for(out.with_name("m.checkpoint") / "state.json", run)
        assert run.poll() is None, "the run ended before it could be interrupted"
        run.send_signal(signal.SIGINT)
        err = run.stderr.read()
        assert run.wait() == 130
    finally:
        run.kill()
        run.stderr.close()
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        f"interrupted: the same command resumes from the checkpoint of the last finished epoch ({out}.checkpoint/)")
    done = len(json.loads((out.with_name("m.checkpoint") / "state.json").read_text())["history"]["loss"])
    assert 1 <= done < 6 and main(argv) == 0
    assert len(json.loads(out.with_name("m.json").read_text())["training"]["loss"]) == 6
    # and says that it goes on (only the progress bar's first epoch told)
    assert f"continuing this run's checkpoint in {out}.checkpoint: {done} of 6 epochs done" in capsys.readouterr().out


def test_ctrl_c_of_a_command_with_restart_says_to_drop_restart_to_resume(tmp_path, capsys, monkeypatch):
    # a tester's: "the same command resumes", but the same command, --restart and all, threw the epochs away
    from ssimlib.apps import cli

    def interrupted(argv):
        raise KeyboardInterrupt

    (tmp_path / "m.checkpoint").mkdir()
    (tmp_path / "m.checkpoint" / "state.json").write_text("{}")
    monkeypatch.setattr(cli, "_command", interrupted)
    assert cli.main(["train", "data", "--out", str(tmp_path / "m"), "--restart"]) == 130
    assert capsys.readouterr().err == (
        "interrupted: the same command without --restart resumes from the checkpoint of the last finished epoch "
        f"({tmp_path}/m.checkpoint/); with --restart it starts over\n")
    assert cli.main(["train", "data", "--out", str(tmp_path / "m")]) == 130
    assert capsys.readouterr().err.startswith("interrupted: the same command resumes")
    # detect and evaluate stopped before any image was scored keep nothing, and say so (a tester's: "detections.csv
    # in --out lists the images finished" of an --out that did not exist)
    for command, kept in (("detect", "detections.csv"), ("evaluate", "evaluation.csv")):
        out = tmp_path / command
        assert cli.main([command, "model", "images", "--out", str(out)]) == 130
        assert capsys.readouterr().err == (
            "interrupted: no image had been scored, so nothing was kept; the same command starts again\n")
        out.mkdir()
        (out / kept).write_text("path\n")
        assert cli.main([command, "model", "images", "--out", str(out)]) == 130
        assert capsys.readouterr().err == f"interrupted: {cli.INTERRUPTED[command]}\n"
    monkeypatch.undo()  # and options abbreviated (--resta, --o), which that line would not see, are refused
    for abbreviated, said in ((["--out", str(tmp_path / "m"), "--resta"], "ssimlib: unrecognized arguments: --resta"),
                              (["--o", str(tmp_path / "m")], "ssimlib train: the following arguments are required: "
                                                             "--out")):
        with pytest.raises(SystemExit) as refused:
            cli.main(["train", str(tmp_path), *abbreviated])
        assert refused.value.code == 2 and capsys.readouterr().err == f"error: {said} (-h lists the options)\n"


def test_one_image_is_too_few_and_hidden_files_are_no_images(tmp_path, capsys):
    folder = tmp_path / "one"
    folder.mkdir()
    skimage.io.imsave(folder / "a.png", np.zeros((64, 64), np.uint8), check_contrast=False)
    (folder / "._a.png").write_bytes(b"\0\5\26\7 AppleDouble")  # what macOS leaves beside a.png on a foreign drive
    code, err = run_main(["train", str(folder), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert code == 2 and err == [f"error: {folder}: 1 image; training needs at least one more than the 1 "
                                 "--validation-fraction holds out to set the threshold"], err


def test_a_threshold_set_on_one_held_out_image_is_cautioned_of(tmp_path, capsys):
    # a tester's: two images trained without a word that the threshold rests on the one held out
    rng = np.random.default_rng(0)
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        skimage.io.imsave(folder / name, rng.integers(60, 200, (64, 64), dtype=np.uint8), check_contrast=False)
    code, err = run_main(["train", str(folder), "--out", str(tmp_path / "m"), *TINY], capsys)
    told = [line for line in err if "single held-out image" in line]
    assert code == 0 and len(told) == 1 and re.fullmatch(  # TINY's fraction 0.25: round(0.25 * 6) = 2 held out
        rf"warning: {re.escape(str(folder))}: the detection threshold rests on a single held-out image "
        r"\([ab]\.png\) of 2: .*give at least 6 images \(two held out at this --validation-fraction\)", told[0]), err


def test_images_beside_a_train_good_are_not_passed_over(data, tmp_path, capsys):
    # a folder with images at its top and a train/good trained on train/good without a word
    folder = tmp_path / "mixed"
    shutil.copytree(data[0], folder)
    shutil.copyfile(next((folder / "train" / "good").iterdir()), folder / "top.png")
    code, err = run_main(["train", str(folder), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert code == 2 and err == [f"error: {folder}: holds images at its top and an MVTec AD-style train/good; "
                                 f"which are the defect-free ones? Give {folder / 'train' / 'good'}, or move train/ "
                                 f"out of {folder}"], err


def test_a_held_out_copy_of_a_training_image_is_warned_of(tmp_path, capsys):
    folder = tmp_path / "copies"
    folder.mkdir()
    board = np.kron(np.indices((8, 8)).sum(axis=0) % 2, np.ones((8, 8))).astype(np.uint8) * 255
    for name in ("a", "b", "c", "d"):  # one picture saved four times: whichever is held out is a copy
        skimage.io.imsave(folder / f"{name}.png", board, check_contrast=False)
    code, err = run_main(["train", str(folder), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert code == 0
    (warning,) = [line for line in err if "are copies of training images" in line]
    assert warning.startswith(f"warning: {folder}: 1 held-out image(s) are copies of training images (")
    assert "the threshold is set on images the model learnt, so it may come out too low" in warning


SAVE_KILLED = """
import os, signal, sys
from ssimlib import artifacts
from ssimlib.models import ConvAutoencoder

model = ConvAutoencoder(32, 1, 8)
moves, real_replace = [], os.replace

def replace(source, target):  # the save's file moves, numbered from 1: die at the chosen one
    moves.append(target)
    if len(moves) == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace(source, target)

os.replace = replace
artifacts.save_model(model, sys.argv[1], artifacts.architecture_of(model), {"epochs_done": 2})
"""


@pytest.mark.parametrize("kill_at, survivor", [(1, "old"), (2, "old"), (3, "new"), (1, None)])
def test_a_killed_save_leaves_one_whole_model(tmp_path, kill_at, survivor):
    """Moves of a save: 1 its staged manifest into the staging folder, 2 the weights in place, 3 the manifest."""
    stem = tmp_path / "m"
    if survivor is not None:
        model = ConvAutoencoder(32, 1, 8)
        artifacts.save_model(model, stem, artifacts.architecture_of(model), {"epochs_done": 1})
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    killed = subprocess.run([sys.executable, "-c", SAVE_KILLED, str(stem), str(kill_at)], env=env, capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    if survivor is None:
        assert artifacts.read_manifest(stem) is None
        assert files_in(tmp_path) == []
        return
    _, manifest = artifacts.load_model(stem)  # checks the weights' sha256 against the manifest
    assert manifest["training"]["epochs_done"] == {"old": 1, "new": 2}[survivor]
    assert files_in(tmp_path) == ["m.json", "m.weights.h5"]


def test_a_stopped_run_makes_the_model_of_its_finished_epochs_and_an_empty_checkpoint_is_no_run(data, tmp_path,
                                                                                                 capsys, monkeypatch):
    # a tester's round: the epochs a Ctrl-C left could not become a model (only --restart, which deletes them, was
    # offered); a run stopped before its first epoch guarded its empty checkpoint and said it would resume from it
    out = tmp_path / "m"
    assert main(["train", str(data[0]), "--out", str(out), *TINY]) == 0
    run_file = out.with_name("m.checkpoint") / "run.json"
    run = json.loads(run_file.read_text())
    run_file.write_text(json.dumps({**run, "epochs": 6}))  # as a run asked for 6 epochs and stopped after 2
    for suffix in (".json", ".weights.h5"):
        out.with_name("m" + suffix).unlink()
    capsys.readouterr()
    code, err = run_main(["train", str(data[0]), "--out", str(out), *with_option(TINY, "--epochs", "1")], capsys)
    assert code == 2 and err == [f"error: {run_file}: --out {out} holds this run's checkpoint of 2 finished epochs, "
                                 "more than --epochs 1; --epochs 2 makes the model of those, more go on (--restart "
                                 "starts over)"], err
    state = json.loads((out.with_name("m.checkpoint") / "state.json").read_text())
    assert main(["train", str(data[0]), "--out", str(out), *TINY]) == 0  # TINY: --epochs 2
    training = json.loads(out.with_name("m.json").read_text())["training"]
    assert training["epochs_done"] == 2 and training["run"]["epochs"] == training["settings"]["epochs"] == 2
    assert training["seconds"] == state["history"]["seconds"]  # the checkpoint's epochs, none trained again
    # a run stopped before its first epoch beside a model of another run: the model's run is the one there
    (out.with_name("m.checkpoint") / "state.json").unlink()
    run_file.write_text(json.dumps({**run, "patch_size": 64}))
    capsys.readouterr()
    assert main(["train", str(data[0]), "--out", str(out), *TINY]) == 0

    capsys.readouterr()
    other = tmp_path / "n"
    other.with_name("n.checkpoint").mkdir()
    other.with_name("n.checkpoint").joinpath("run.json").write_text(json.dumps({**run, "patch_size": 64}))
    monkeypatch.setattr("ssimlib.apps.cli._command", lambda argv: (_ for _ in ()).throw(KeyboardInterrupt))
    code, err = run_main(["train", str(data[0]), "--out", f"{other}.json", *TINY], capsys)
    assert code == 130 and err == ["interrupted: no epoch had finished, so nothing was kept; the same command starts "
                                   "again"], err
    monkeypatch.undo()
    assert main(["train", str(data[0]), "--out", f"{other}.json", *TINY]) == 0  # --out with the manifest's ending
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.glob("n*")) == ["n.checkpoint", "n.json", "n.weights.h5"]


def test_a_name_of_bytes_that_are_no_utf8_trains_and_a_detect_runs_outputs_are_left_out(data, tmp_path, capsys):
    # a tester's round: a Latin-1 file name (a Windows share's) stopped train with a UnicodeEncodeError traceback;
    # detect's maps and overlays beside its detections.csv in the folder were trained on as defect-free images
    folder = tmp_path / "own"
    shutil.copytree(data[0] / "train" / "good", folder)
    first = sorted(folder.iterdir())[0]
    first.rename(folder / os.fsdecode(b"caf\xe9.png"))
    for name in ("000_map.png", "001_overlay.png"):
        shutil.copyfile(sorted(folder.iterdir())[1], folder / name)
    (tmp_path / "detections.csv").write_text("path\n")  # a detect run's above the folder: its images are still images
    assert main(["train", str(folder), "--out", str(tmp_path / "all"), *TINY]) == 0
    training = json.loads((tmp_path / "all.json").read_text())["training"]
    assert training["training_images"] + len(training["validation_images"]) == 10
    (folder / "detections.csv").write_text("path\n")
    out = tmp_path / "m"
    code, err = run_main(["train", str(folder), "--out", f"{out}.weights.h5", *TINY], capsys)
    assert code == 0 and [line for line in err if "detections.csv" in line] == [
        f"warning: {folder}: 2 files beside a detections.csv taken for an earlier detect run's maps and overlays, "
        "not trained on (000_map.png, 001_overlay.png)"], err
    training = json.loads(out.with_name("m.json").read_text())["training"]
    assert training["training_images"] + len(training["validation_images"]) == 8  # the 8 boards, no map or overlay


def test_every_image_smaller_than_the_patch_is_counted_in_one_line(tmp_path, capsys):
    # a tester's: each too small image was named by a run of its own
    folder = tmp_path / "small"
    folder.mkdir()
    for name, side in (("a", 64), ("b", 64), ("t1", 20), ("t2", 20), ("t3", 16)):
        skimage.io.imsave(folder / f"{name}.png", np.full((side, side), 99, np.uint8), check_contrast=False)
    code, err = run_main(["train", str(folder), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert code == 2 and err == [f"error: {folder / 't1.png'}: image is 20x20, smaller than the 32x32 patch; so are 2 "
                                 "more (t2.png, t3.png) (leave them out, or choose a smaller --patch-size)"], err


def test_a_model_trained_with_gray_converts_colour_images_without_a_warning(data, tmp_path, capsys):
    # a tester's: every colour image detect was given warned that it was converted, as the model was trained to
    folder = tmp_path / "colour"
    folder.mkdir()
    for path in sorted((data[0] / "train" / "good").iterdir()):
        skimage.io.imsave(folder / path.name, np.repeat(skimage.io.imread(path)[..., None], 3, -1),
                          check_contrast=False)
    for gray, warned in (("--gray", False), (None, True)):
        model = tmp_path / ("gray" if gray else "plain")
        source = folder if gray else data[0] / "train" / "good"  # the plain one is trained on gray images
        assert main(["train", str(source), "--out", str(model), *TINY, *([gray] if gray else [])]) == 0
        capsys.readouterr()
        code, err = run_main(["detect", str(model), str(folder / "000.png"), "--out", str(tmp_path / f"d-{gray}")],
                             capsys)
        assert code == 0 and any("converted to gray" in line for line in err) == warned, (gray, err)


def test_the_memory_check_compares_float32_sizes_with_the_memory_given():
    from ssimlib.apps.own_options import InputError, check_fits_in_memory

    check_fits_in_memory(32, 8, 1024, available=1024 * 32 * 32 * 4)  # exactly what 1,024 gray 32 px patches take
    with pytest.raises(InputError, match=r"^--n-patches 1025: "):
        check_fits_in_memory(32, 8, 1025, available=1024 * 32 * 32 * 4)
    bottleneck = 2 * 8 * 8 * 32 * 100 * 4 * 4  # encoder and decoder, 8x8x32 -> 100, weights, gradients, two moments
    check_fits_in_memory(32, 100, 1, available=bottleneck)
    with pytest.raises(InputError, match=r"^--latent-dim 101: "):
        check_fits_in_memory(32, 101, 1, available=bottleneck)


def test_a_held_out_image_warned_of_is_named_as_the_thresholds_source(data, tmp_path, capsys):
    # a 12-bit image in a 16-bit file (warned: it reads dark) was held out and set the threshold without a word
    from ssimlib.experiments.mvtec import split_validation

    folder = tmp_path / "boards"
    shutil.copytree(data[0] / "train" / "good", folder)
    names = sorted(p.name for p in folder.iterdir())
    held, kept = (names[i] for i in (split_validation(names, 0.25, 0)[2][0],
                                     sorted(set(range(len(names))) - set(split_validation(names, 0.25, 0)[2]))[0]))
    for dark, out in ((kept, "kept"), (held, "held")):
        shutil.copytree(data[0] / "train" / "good", folder, dirs_exist_ok=True)
        path = folder / dark
        skimage.io.imsave(path, (skimage.io.imread(path).astype(np.uint16) * 16), check_contrast=False)
        code, err = run_main(["train", str(folder), "--out", str(tmp_path / out / "m"), *TINY], capsys)
        assert code == 0 and any(f"{dark}: 16-bit pixels reach only" in line for line in err), err
        told = [line for line in err if "held out to set the detection threshold" in line]
        assert told == ([] if dark == kept else [f"warning: {folder}: {held} held out to set the detection threshold, "
                                                 "and warned of above: the threshold rests on it; mend or remove it "
                                                 "(or another --seed holds out other images)"]), err

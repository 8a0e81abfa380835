"""python -m ssimlib.apps.batch: runs notebook 04 per category and model, goes on past a failure, skips complete
results."""

import json
import os
import queue
import subprocess
import sys
import time

import pytest
import skimage.io

from ssimlib import artifacts
from ssimlib.apps import batch, batch_plan, batch_results
from ssimlib.apps.notebooks import NOTEBOOK_DIR
from ssimlib.fingerprints import category_fingerprint
from ssimlib.synthetic import write_synthetic_category

# The smallest run that still trains and evaluates: 64 px boards, 32 px patches, 1 epoch (the ci profile
# itself never trains; train_missing true makes it).
TINY = ["--profile", "ci", "-p", "train_missing", "true", "-p", "patch_size", "32", "-p", "stride", "32",
        "-p", "n_patches", "64", "-p", "epochs", "1", "-p", "batch_size", "32", "-p", "validation_fraction", "0.25",
        "-p", "n_examples", "2"]


@pytest.fixture
def categories(tmp_path):
    root = tmp_path / "data"
    write_synthetic_category(root, "synth", n_train=8, n_good=2, n_defective=3, size=64)
    broken = write_synthetic_category(root, "broken", n_train=4, n_good=1, n_defective=1, size=64, seed=1)
    (broken / "train" / "good" / "000.png").write_bytes(b"this is not a PNG file")
    return root


def _args(root, tmp_path, *names, extra=(), losses=("ssim",)):
    return ["--data-root", str(root), "--categories", *names, "--losses", *losses, *TINY,
            "--models-root", str(tmp_path / "models"), "--output-dir", str(tmp_path / "runs"),
            "--results-dir", str(tmp_path / "results"), "--figures-dir", str(tmp_path / "figures"), *extra]


def test_batch_goes_on_past_a_failure_then_skips_then_redoes(categories, tmp_path, capsys, monkeypatch):
    code = batch.main(_args(categories, tmp_path, "broken", "synth", extra=["--workers", "2"], losses=("ssim", "l2")))
    out = capsys.readouterr()
    assert code == 1
    assert "broken-ssim-cvpr2019" in out.err and "FAILED" in out.out and "DatasetError" in out.out
    for loss, model in (("ssim", "SSIM-AE"), ("l2", "L2-AE")):  # both models of CVPR 2019 Table 3
        record = json.loads((tmp_path / "results" / f"synth-{loss}-cvpr2019.json").read_text())
        assert record["complete"] and record["profile"] == "ci" and record["category"] == "synth"
        assert record["model"] == model and record["setup"] == "cvpr2019"
        assert 0 <= record["metrics"]["pixel_auroc"] <= 1
        assert (tmp_path / "models" / "mvtec" / f"synth-{loss}-cvpr2019.weights.h5").exists()
        assert (tmp_path / "runs" / f"synth-{loss}-cvpr2019.ipynb").exists()
    assert (tmp_path / "runs" / "broken-ssim-cvpr2019.failed.ipynb").exists()  # the cells that ran
    assert "runs/broken-ssim-cvpr2019.failed.ipynb" in out.out
    assert (tmp_path / "figures" / "mvtec" / "synth-ssim-cvpr2019_examples.png").exists()
    assert not list((tmp_path / "results").glob("broken*"))

    result = tmp_path / "results" / "synth-ssim-cvpr2019.json"
    weights = tmp_path / "models" / "mvtec" / "synth-ssim-cvpr2019.weights.h5"
    stamp, weights_stamp = result.stat().st_mtime_ns, weights.stat().st_mtime_ns
    assert batch.main(_args(categories, tmp_path, "synth")) == 0
    assert "1 skipped" in capsys.readouterr().out
    assert result.stat().st_mtime_ns == stamp
    hashed = []  # a category's images hashed once for both its models' results (they were hashed per model)
    monkeypatch.setattr(batch_plan, "category_fingerprint",
                        lambda folder: hashed.append(folder) or category_fingerprint(folder))
    assert batch.main(_args(categories, tmp_path, "synth", losses=("ssim", "l2"))) == 0
    assert "2 skipped" in capsys.readouterr().out and hashed == [categories / "synth"]
    monkeypatch.undo()
    original = weights.read_bytes()  # weights damaged after the evaluation: still skipped, the damage named
    weights.write_bytes(original + b"\0")
    assert batch.main(_args(categories, tmp_path, "synth")) == 0
    out = capsys.readouterr().out
    assert "1 skipped" in out and "its stored model cannot be loaded now" in out and "differs from its manifest" in out
    weights.write_bytes(original)
    os.utime(weights, ns=(weights_stamp, weights_stamp))

    record = json.loads(result.read_text())  # as if the model had trained on since its evaluation
    result.write_text(json.dumps({**record, "model_store": {**record["model_store"], "sha256": "0" * 64}}))
    assert batch.main(_args(categories, tmp_path, "synth")) == 0
    assert "1 ok" in capsys.readouterr().out
    assert json.loads(result.read_text())["model_store"]["sha256"] == record["model_store"]["sha256"]
    assert weights.stat().st_mtime_ns == weights_stamp
    stamp = result.stat().st_mtime_ns

    assert batch.main(_args(categories, tmp_path, "synth", extra=["--redo"])) == 0
    assert "1 ok" in capsys.readouterr().out
    assert result.stat().st_mtime_ns > stamp
    assert weights.stat().st_mtime_ns == weights_stamp  # the stored model was evaluated, not trained again


def test_batch_runs_on_a_real_dask_cluster(categories, tmp_path, capsys, monkeypatch):
    # The README's multi-machine recipe: a scheduler with single-threaded worker processes, and --scheduler.
    from distributed import Client, LocalCluster

    ran = []

    def spy_on_dask(*args, **kwargs):
        ran.extend(real_run_with_dask(*args, **kwargs))
        return ran

    def no_fallback(*args, **kwargs):
        raise AssertionError("the batch fell back to a local process pool")

    real_run_with_dask = batch._run_with_dask
    monkeypatch.setattr(batch, "_run_with_dask", spy_on_dask)
    monkeypatch.setattr(batch, "_run_with_futures", no_fallback)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
        code = batch.main(_args(categories, tmp_path, "broken", "synth",
                                extra=["--scheduler", cluster.scheduler_address]))
    out = capsys.readouterr()
    assert code == 1 and f"Dask scheduler {cluster.scheduler_address}" in out.out
    assert sorted(o["category"] for o in ran) == ["broken", "synth"]
    assert {o["pid"] for o in ran} <= worker_pids and os.getpid() not in worker_pids
    assert {o["category"]: o["status"] for o in ran} == {"broken": "failed", "synth": "ok"}
    assert json.loads((tmp_path / "results" / "synth-ssim-cvpr2019.json").read_text())["complete"]
    assert "failed: broken-ssim-cvpr2019" in out.err


def test_default_categories_are_the_mvtec_ones_found(tmp_path):
    for name in ("grid", "zipper", "not_mvtec"):
        (tmp_path / name / "train" / "good").mkdir(parents=True)
    assert batch.find_categories(tmp_path) == ["grid", "zipper"]
    assert batch.find_categories(tmp_path, ["not_mvtec", "grid", "grid"]) == ["not_mvtec", "grid"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="--categories"):
        batch.find_categories(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="nowhere: it does not exist"):
        batch.find_categories(tmp_path / "nowhere")


def test_without_data_root_each_category_is_found_where_it_lies(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSIMLIB_DATA", str(tmp_path))
    for root, category in (("mvtec_ad_grid_256", "grid"), ("mvtec_ad_bottle_320", "bottle")):  # as the shared copies
        (tmp_path / root / category / "train" / "good").mkdir(parents=True)
    assert batch.located_categories() == {"bottle": tmp_path / "mvtec_ad_bottle_320",
                                          "grid": tmp_path / "mvtec_ad_grid_256"}
    assert batch.located_categories(["grid"]) == {"grid": tmp_path / "mvtec_ad_grid_256"}
    # A chosen category found nowhere is refused before any run (a tester's: each of its runs failed, exit 1)
    code = batch.main(["--categories", "grid", "mine", "--profile", "ci", "--workers", "1",
                       "--results-dir", str(tmp_path / "results"),
                       "--output-dir", str(tmp_path / "runs"), "--figures-dir", ""])
    assert code == 2 and capsys.readouterr().err.splitlines() == [
        f"error: --categories mine: found under no data folder (looked under {tmp_path / 'mvtec_ad'} and beside it); "
        "pass --data-root"]
    assert not (tmp_path / "runs").exists()
    (tmp_path / "lay.py").write_text("")
    for root, message in ((tmp_path, f"--categories mine: no such folder under --data-root {tmp_path}"),
                          (tmp_path / "lay.py", f"--data-root {tmp_path / 'lay.py'}: it is a file")):
        assert batch.main(["--data-root", str(root), "--categories", "mine", "--profile", "ci"]) == 2
        assert capsys.readouterr().err.startswith(f"error: {message}")
    monkeypatch.setenv("SSIMLIB_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="pass --data-root"):
        batch.located_categories()
    assert batch.main(["--profile", "ci"]) == 2


def test_result_is_complete_needs_the_same_profile(tmp_path):
    path = tmp_path / "grid.json"
    assert not batch_results.result_is_complete(path, "ci")
    path.write_text("{half a fi")
    assert not batch_results.result_is_complete(path, "ci")
    path.write_text(json.dumps({"complete": True, "profile": "ci", "metrics": {"pixel_auroc": 0.5}}))
    assert batch_results.result_is_complete(path, "ci")
    assert not batch_results.result_is_complete(path, "full")
    assert not batch_results.result_is_complete(path, "ci", since=path.stat().st_mtime + 10)
    assert batch.profile_label("ci") == "ci" and batch.profile_label("full") == "full"
    assert batch.profile_label("ci", {"profile": "mine"}) == "mine"


def test_a_result_of_another_model_than_the_stored_one_is_stale(tmp_path):
    result = tmp_path / "grid-ssim-cvpr2019.json"
    result.write_text(json.dumps({"complete": True, "model_store": {"sha256": "a"}}))
    assert not batch_results.result_is_stale(result, None)  # no stored model: nothing to compare
    assert not batch_results.result_is_stale(result, {"sha256": "a"})
    assert batch_results.result_is_stale(result, {"sha256": "b"})
    assert not batch_results.result_is_stale(tmp_path / "missing.json", {"sha256": "b"})
    assert batch.models_root_of("full") is None
    assert batch.models_root_of("full", models_root=tmp_path) == tmp_path
    assert batch.models_root_of("reduced") == (NOTEBOOK_DIR / "../runs/04_mvtec_category/models").resolve()
    assert batch.models_root_of("ci") == (NOTEBOOK_DIR.parent / "models").resolve()  # ci paths: from tests/notebooks


def test_bad_arguments_exit_2(tmp_path, capsys):
    (tmp_path / "grid" / "train").mkdir(parents=True)
    assert batch.main(["--data-root", str(tmp_path / "nowhere")]) == 2
    assert batch.main(["--data-root", str(tmp_path), "--gpus", "0", "1", "--workers", "3"]) == 2
    with pytest.raises(SystemExit) as exit_:
        batch.main(["--data-root", str(tmp_path), "--workers", "0"])
    assert exit_.value.code == 2
    assert "argument --workers: expected a whole number of at least 1, got '0'" in capsys.readouterr().err
    assert batch.main(["--data-root", str(tmp_path), "-p", "epoch", "3"]) == 2  # a typo of epochs: nothing runs
    assert "has no parameter 'epoch'; choose from" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        batch.main(["--data-root", str(tmp_path), "--losses", "ssim", "L2"])
    assert exit_.value.code == 2 and "invalid choice: 'L2'" in capsys.readouterr().err
    if not batch._have_distributed():
        assert batch.main(["--data-root", str(tmp_path), "--scheduler", "tcp://localhost:8786"]) == 2
        assert "ssimlib[distributed]" in capsys.readouterr().err


def test_a_scheduler_that_does_not_answer_is_one_line(categories, tmp_path, capsys):
    # distributed's "OSError: Timed out trying to connect" traceback, exit 1 after 55 s
    pytest.importorskip("distributed")
    args = _args(categories, tmp_path, "synth", extra=["--scheduler", "tcp://127.0.0.1:1"])
    assert batch.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --scheduler tcp://127.0.0.1:1: no Dask scheduler answered"), err


def test_dask_workers_add_nothing_to_the_one_failure_line(categories, tmp_path):
    # each LocalCluster worker printed TensorFlow's start-up log, and the nanny a "still alive ... killing" warning
    run = subprocess.run([sys.executable, "-m", "ssimlib", "batch", *_args(categories, tmp_path, "broken"),
                          "--workers", "2"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 1 and "Dask LocalCluster" in run.stdout, run.stdout + run.stderr
    assert run.stderr == "failed: broken-ssim-cvpr2019\n", run.stderr
    assert "its contents are not a PNG image" in run.stdout


@pytest.mark.parametrize("key, option", [("loss", "--losses"), ("category", "--categories"),
                                         ("results_dir", "--results-dir")])
def test_a_parameter_the_batch_sets_itself_is_refused(tmp_path, capsys, key, option):
    # `-p loss l2` ran the SSIM-AE and exited 0: the batch sets loss, category, ... for every run
    assert batch.main(["--data-root", str(tmp_path), "--profile", "ci", "-p", key, "x"]) == 2
    assert capsys.readouterr().err == f"error: -p {key}: the batch sets it for each run; use {option}\n"


def test_a_missing_category_fails_without_running(tmp_path):
    outcome = batch.run_category("absent", "ssim", "cvpr2019", tmp_path, "ci", {}, tmp_path / "runs",
                                 tmp_path / "results", "", None, "ci")
    assert outcome["status"] == "failed" and "does not exist" in outcome["error"]


def test_pool_workers_take_one_gpu_each(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = queue.Queue()
    gpus.put("3")
    batch._pool_initializer(gpus)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_ci_names_a_category_folder_that_does_not_exist(tmp_path, capsys):
    # it blamed a missing model and advised training one
    (tmp_path / "data").mkdir()
    assert batch.main(["--data-root", str(tmp_path / "data"), "--profile", "ci", "--categories", "foo"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --categories foo: no such folder under --data-root "
                                               f"{tmp_path / 'data'} (expected a category's folder holding train/good)")


def test_ci_never_trains_a_missing_model(tmp_path):
    # The user's command: a category with no stored model must not start a 200-epoch training under ci.
    write_synthetic_category(tmp_path / "data", "transistor", n_train=2, n_good=1, n_defective=1, size=64)
    started = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "ssimlib", "batch", "--profile", "ci", "--categories", "transistor",
                          "--data-root", "data"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 2, run.stdout + run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "needs a stored model" in run.stderr, run.stderr
    assert "transistor-ssim-cvpr2019" in run.stderr and time.perf_counter() - started < 120
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # nothing written
    assert not batch.trains("ci") and batch.trains("ci", {"train_missing": True})
    assert batch.trains("reduced") and batch.trains("full")


# A batch's own process plans, skips and refuses runs; only the notebooks' kernels load Keras.
BACKENDS_LOADED = """
import sys
from ssimlib.apps.cli import main
status = main(sys.argv[1:])
print(status, sorted({name.split(".")[0] for name in sys.modules} & {"keras", "tensorflow", "jax", "torch"}))
"""


def test_planning_a_batch_loads_no_backend(tmp_path):
    # it imported Keras (30-40 s on a 2-core CPU) before saying that nothing was to run
    write_synthetic_category(tmp_path / "data", "transistor", n_train=2, n_good=1, n_defective=1, size=64)
    run = subprocess.run([sys.executable, "-c", BACKENDS_LOADED, "batch", "--profile", "ci", "--categories",
                          "transistor", "--data-root", "data"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert "needs a stored model" in run.stderr, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "2 []", run.stdout


def test_sigterm_stops_a_process_pool_without_running_the_runs_queued(monkeypatch):
    # a reviewer's: kill reaches the batch's process alone; the pool's exit then ran every queued run (4 runs of 3 s
    # on one worker: 12 s) before the batch ended
    import functools
    import signal
    import threading

    from ssimlib.apps import cli

    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.perf_counter()
    with pytest.raises(cli.Terminated), cli._sigterm_as_interrupt():
        timer.start()
        batch._run_with_futures([{}] * 4, 1, None, lambda outcome: None, run=functools.partial(time.sleep, 3))
    assert time.perf_counter() - started < 6


def test_reduced_trains_its_small_model_for_any_category(tmp_path, monkeypatch):
    # What the notebook gets for a category without a stored model: the profile's budget, not the 200-epoch schedule.
    seen = {}

    def fake_run_notebook(name, output, profile, parameters):
        seen.update(batch.profile_parameters(name, profile), **parameters)
        raise RuntimeError("not run")

    monkeypatch.setattr(batch, "run_notebook", fake_run_notebook)
    (tmp_path / "transistor").mkdir()
    outcome = batch.run_category("transistor", "ssim", "cvpr2019", tmp_path, "reduced", {}, tmp_path / "runs",
                                 tmp_path / "results", "", None, "reduced-cpu", train=batch.trains("reduced"))
    assert outcome["status"] == "failed" and seen["category"] == "transistor"
    assert seen["train_missing"] is True and seen["epochs"] == 8 and seen["n_patches"] == 4000
    assert seen["models_root"] == "../runs/04_mvtec_category/models"  # its own store under runs/, not models/


def test_an_unfinished_model_is_trained_on_to_its_schedule(categories, tmp_path, capsys):
    # A model stopped after its export at epoch 1 of 2 (a killed job), already evaluated as it was: the batch
    # trains it on to epoch 2 and evaluates it again (no --redo needed); its result then counts as complete.
    args = _args(categories, tmp_path, "synth")
    assert batch.main([*args, "-p", "epochs", "1"]) == 0
    capsys.readouterr()
    stem = tmp_path / "models" / "mvtec" / "synth-ssim-cvpr2019"
    manifest_path = artifacts.model_files(stem)[1]
    manifest = json.loads(manifest_path.read_text())
    manifest["training"].update(schedule_epochs=2, complete=False)  # as the export at epoch 1 of a 2-epoch schedule
    manifest_path.write_text(json.dumps(manifest))
    result = tmp_path / "results" / "synth-ssim-cvpr2019.json"
    record = json.loads(result.read_text())
    record["model_store"].update(schedule_epochs=2, complete=False)  # as its evaluation would have said
    result.write_text(json.dumps(record))

    assert batch.main([*args, "-p", "epochs", "2"]) == 0  # not skipped: trained on, then evaluated
    out = capsys.readouterr().out
    assert "1 ok" in out and "(2/2 epochs)" in out, out
    record = json.loads(result.read_text())
    assert record["model_store"]["epochs_done"] == 2 and record["model_store"]["complete"]
    training = json.loads(manifest_path.read_text())["training"]
    assert training["epochs_done"] == 2 and len(training["loss"]) == 2  # epoch 1 kept, epoch 2 added

    assert batch.main([*args, "-p", "epochs", "2"]) == 0
    assert "1 skipped" in capsys.readouterr().out


def test_results_of_an_unfinished_model_are_not_finished(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"model_store": {"epochs_done": 10, "schedule_epochs": 200, "complete": False}}))
    assert not batch.result_model_finished(path) and batch.result_epochs(path) == "10/200"
    path.write_text(json.dumps({"model_store": {"epochs_done": 200, "schedule_epochs": 200}}))
    assert batch.result_model_finished(path)
    assert not batch.result_model_finished(tmp_path / "missing.json")


def test_a_result_of_other_data_or_parameters_is_not_current(tmp_path):
    # batch skipped a category whose results file came from a 3-image subset, or from another -p stride
    category = write_synthetic_category(tmp_path / "data", "synth", n_train=8, n_good=2, n_defective=3, size=64)
    settings = {"stride": 32, "validation_fraction": 0.25, "n_train": 6, "n_validation": 2, "n_test_good": 2,
                "n_test_defective": 3}
    result = tmp_path / "synth-ssim-cvpr2019.json"
    result.write_text(json.dumps({"settings": settings}))
    assert batch_results.result_differences(result, {"stride": 32}, category) == {}
    assert batch_results.result_differences(result, {"train_missing": True}, category) == {}  # not recorded
    assert batch_results.result_differences(result, {"stride": 60}, category) == {"stride": (32, 60)}
    for other in ({"n_test_defective": 57}, {"n_test_good": 0}, {"n_train": 5}):
        result.write_text(json.dumps({"settings": {**settings, **other}}))
        assert batch_results.result_differences(result, {}, category), other
    # an image edited in place, or another data root of as many images: only the recorded fingerprint tells
    recorded = {**settings, "data_sha256": category_fingerprint(category)}
    result.write_text(json.dumps({"settings": recorded}))
    assert batch_results.result_differences(result, {}, category) == {}
    edited = category / "test" / "stroke" / "001.png"
    skimage.io.imsave(edited, 255 - skimage.io.imread(edited), check_contrast=False)
    assert list(batch_results.result_differences(result, {}, category)) == ["data_sha256"]
    (category / "test" / "stroke" / "000.png").unlink()  # the data changed since
    result.write_text(json.dumps({"settings": settings}))
    assert batch_results.result_differences(result, {}, category) == {"n_test_defective": (3, 2)}
    # the training schedule counts where the batch trains: its model's, epochs as its schedule's
    result.write_text(json.dumps({"settings": settings, "model_store": {
        "schedule_epochs": 1, "settings": {"epochs": 1, "n_patches": 256, "batch_size": 8, "learning_rate": 1e-3}}}))
    asked = {"epochs": 2, "n_patches": 256, "batch_size": 8, "learning_rate": 1e-3}
    assert batch_results.result_differences(result, asked, category) == {"n_test_defective": (3, 2)}
    assert batch_results.result_differences(result, asked, category, train=True) == {
        "n_test_defective": (3, 2), "epochs": (1, 2)}


def test_a_result_of_other_parameters_is_redone_and_a_model_of_other_settings_refused(categories, tmp_path, capsys):
    # a result made with -p stride 60 was skipped as current by the same batch without -p (stride 30), and a finished
    # model of 1 epoch was evaluated as it was under -p epochs 2, both exit 0 without a word
    args = _args(categories, tmp_path, "synth")
    assert batch.main([*args, "-p", "stride", "60"]) == 0
    capsys.readouterr()
    assert batch.main(args) == 0
    out = capsys.readouterr().out
    assert "1 ok" in out and "made with other settings (recorded -> now): stride 60 -> " in out, out
    assert batch.main([*args, "-p", "epochs", "2"]) == 1
    out = capsys.readouterr().out
    assert "epochs 1 -> 2" in out and "a finished model (1 of 1 epochs) trained with other settings" in out, out


def test_an_output_folder_that_is_a_file_is_named_before_any_run(categories, tmp_path, capsys):
    # a --results-dir that was a file failed each category after its whole evaluation (or training), metrics lost
    (tmp_path / "a_file").write_text("")
    for option in ("--output-dir", "--results-dir", "--figures-dir", "--models-root"):  # a model: after its training
        argv = _args(categories, tmp_path, "synth")
        argv[argv.index(option) + 1] = str(tmp_path / "a_file" / "below")
        assert batch.main(argv) == 2
        assert capsys.readouterr().err.strip() == f"error: {option}: {tmp_path / 'a_file'} is a file, not a folder"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_a_category_named_with_a_trailing_slash_is_the_category_and_a_path_is_refused(capsys):
    # a tester's: --categories grid/ (as the shell completes it) took the unknown-category preset and a model
    # path models/mvtec/grid/-ssim-cvpr2019, and would have trained it for hours
    assert batch.parse_args(["--categories", "grid/", "bottle"]).categories == ["grid", "bottle"]
    for name in ("mvtec/grid", "..", "/"):
        with pytest.raises(SystemExit) as exit_:
            batch.parse_args(["--categories", name])
        assert exit_.value.code == 2
        assert f"argument --categories: {name!r}: expected the name of a category's folder directly under " \
               "--data-root (grid, not a path)" in capsys.readouterr().err


def test_a_result_is_compared_with_the_preset_values_a_run_would_resolve(tmp_path):
    # a tester's: a result made with -p patch_size 32 was kept by the same batch without it (the preset's 128 px),
    # since a parameter left None was never compared; CVPR 2019 states 128 px patches and d = 100 for the textures,
    # resized to 256 px, and the L2-AE's residual compares pixels
    grid = batch_results.resolved_preset("grid", "ssim", {"patch_size": None, "latent_dim": None}, "cvpr2019")
    assert {key: grid[key] for key in ("patch_size", "latent_dim", "resize")} == {
        "patch_size": 128, "latent_dim": 100, "resize": 256}
    assert batch_results.resolved_preset("grid", "l2", {}, "cvpr2019")["residual"] == "l2"
    assert batch_results.resolved_preset("grid", "ssim", {"patch_size": 32}, "cvpr2019")["patch_size"] == 32
    category = write_synthetic_category(tmp_path / "data", "grid", n_train=2, n_good=1, n_defective=1, size=64)
    result = tmp_path / "grid-ssim-cvpr2019.json"
    result.write_text(json.dumps({"settings": {"patch_size": 32, "latent_dim": 100}}))
    asked = batch_results.resolved_preset("grid", "ssim", {}, "cvpr2019")
    assert batch_results.result_differences(result, asked, category) == {"patch_size": (32, 128)}


def test_a_stored_manifest_that_cannot_be_read_fails_its_run_and_the_others_go_on(categories, tmp_path, capsys,
                                                                                monkeypatch):
    # a tester's: one corrupted manifest in the model store stopped the whole batch with a traceback
    stem = artifacts.study_model("mvtec", "broken-ssim-cvpr2019", tmp_path / "models")
    stem.parent.mkdir(parents=True)
    stem.with_suffix(".json").write_text('{"name": "broken", "sha256": ')
    ran = []

    def run_jobs(jobs, workers, gpus, report):
        ran.extend(job["category"] for job in jobs)
        return []

    monkeypatch.setattr(batch, "_run_with_futures", run_jobs)
    monkeypatch.setattr(batch, "_have_distributed", lambda: False)
    assert batch.main(_args(categories, tmp_path, "broken", "synth")) == 1
    captured = capsys.readouterr()
    assert ran == ["synth"]
    assert "0 skipped, 1 failed up front (named below)" in captured.out
    failed = [line.split() for line in captured.out.splitlines() if line.startswith("  broken-ssim-cvpr2019 ")]
    assert failed and all(line[1:4] == ["FAILED", "ArtifactError:", f"{stem}.json:"] for line in failed), failed
    hint = f"restore it (git checkout -- <file>, for a committed model) or move {stem}.* aside to train it anew"
    assert captured.out.count(hint) == 2  # how to go on, as it fails and in the summary
    assert captured.err == "failed: broken-ssim-cvpr2019\n"
    reads = []  # each stored manifest is read once to decide its run (it was read two or three times)
    monkeypatch.setattr(batch_plan, "read_manifest", lambda stem: reads.append(stem) or artifacts.read_manifest(stem))
    assert batch.main(_args(categories, tmp_path, "broken", "synth")) == 1 and ran == ["synth", "synth"]
    assert sorted(path.name for path in reads) == ["broken-ssim-cvpr2019", "synth-ssim-cvpr2019"]


def test_a_batch_stopped_with_ctrl_c_keeps_the_cells_its_runs_had_run(categories, tmp_path, capsys, monkeypatch):
    # a tester's: Ctrl-C left the runs in flight as hidden .<run>.running.ipynb, which nothing names or reads
    def stopped(jobs, workers, gpus, report):
        runs = tmp_path / "runs"
        runs.mkdir()
        (runs / ".synth-ssim-cvpr2019.running.ipynb").write_text('{"cells": [{"cell_type": "code", "sou')  # cut off
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_run_with_futures", stopped)
    monkeypatch.setattr(batch, "_have_distributed", lambda: False)
    with pytest.raises(KeyboardInterrupt):
        batch.main(_args(categories, tmp_path, "broken", "synth"))
    kept = tmp_path / "runs" / "synth-ssim-cvpr2019.failed.ipynb"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [kept.name]
    assert kept.read_text() == '{"cells": [{"cell_type": "code", "sou'
    assert capsys.readouterr().err == f"kept the cells a stopped run had run: {kept}\n"


def test_a_category_lacking_what_the_notebook_reads_fails_its_runs_up_front(categories, tmp_path, capsys,
                                                                             monkeypatch):
    # a tester's: a category without ground_truth/ failed each of its runs 45-80 s in, naming one mask file
    import shutil

    shutil.rmtree(categories / "synth" / "ground_truth")
    ran = []
    monkeypatch.setattr(batch, "_run_with_futures", lambda jobs, workers, gpus, report: ran.extend(jobs) or [])
    monkeypatch.setattr(batch, "_have_distributed", lambda: False)
    assert batch.main(_args(categories, tmp_path, "broken", "synth", losses=("ssim", "l2"))) == 1
    out = capsys.readouterr().out
    assert sorted((job["category"], job["loss"]) for job in ran) == [("broken", "l2"), ("broken", "ssim")]
    assert "2 to run, 0 skipped, 2 failed up front (named below)" in out
    failed = [line for line in out.splitlines() if line.startswith("  synth-")]  # as they fail, and in the summary
    named = f"DatasetError: {categories / 'synth' / 'ground_truth' / 'stroke'}: expected a folder with the ground-truth"
    assert len(failed) == 4 and all("FAILED" in line and named in line for line in failed), failed
    # a profile that does not train, a model missing: the failures found up front are named with it (a tester's:
    # they were hidden behind it)
    assert batch.main(_args(categories, tmp_path, "broken", "synth", extra=["-p", "train_missing", "false"])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a stored model" in err and (
        f"; besides, 1 run(s) would fail up front (synth-ssim-cvpr2019: {named}") in err, err

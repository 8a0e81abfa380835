"""The command line, and the notebook conventions every notebook follows."""

import ast
import json
import shutil
from pathlib import Path
import subprocess
import sys

import nbformat
import pytest
import yaml

from ssimlib.apps.cli import main
from ssimlib.apps.notebooks import CI_COPY_DIR, NOTEBOOK_DIR, PARAMS_DIR, notebook_names, profile_parameters

NAMES = notebook_names()


def test_demo_prints_a_pixel_auroc(capsys):
    assert main(["demo", "--epochs", "1"]) == 0
    assert "pixel AUROC" in capsys.readouterr().out


@pytest.mark.parametrize("option, value", [("--epochs", "0"), ("--epochs", "-1"), ("--n-train", "0"),
                                           ("--n-train", "x")])
def test_demo_refuses_a_count_below_one(option, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", option, value])
    assert exit_.value.code == 2
    assert f"argument {option}: expected a whole number of at least 1, got '{value}'" in capsys.readouterr().err


def _parameters(name):
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), f"{name}: first code cell is not tagged 'parameters'"
    lines = [line for line in first_code.source.splitlines() if line.strip()]
    names = [ast.parse(line.split("#")[0]).body[0].targets[0].id for line in lines if not line.lstrip().startswith("#")]
    return names, lines


def test_there_are_five_notebooks():
    assert len(NAMES) == 5


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_documents_every_parameter(name):
    names, lines = _parameters(name)
    assert "profile" in names and "figures_dir" in names
    for line in lines:
        assert "#" in line, f"{name}: parameter line without a comment: {line!r}"


@pytest.mark.parametrize("name", NAMES)
def test_profiles_only_set_known_parameters(name):
    names, _ = _parameters(name)
    for profile_file in PARAMS_DIR.glob(f"*/{name}.yaml"):
        unknown = set(yaml.safe_load(profile_file.read_text()) or {}) - set(names)
        assert not unknown, f"{profile_file}: parameters the notebook does not have: {unknown}"
    assert profile_parameters(name, "ci")["profile"] == "ci"
    assert (CI_COPY_DIR / f"{name}.ipynb").exists(), f"run: python -m ssimlib refresh-ci {name}"


def test_unknown_notebook_is_reported(capsys):
    assert main(["notebook", "99_nothing"]) == 2
    assert "choose from" in capsys.readouterr().err


def test_cli_prints_no_tensorflow_start_up_log():
    run = subprocess.run([sys.executable, "-m", "ssimlib", "train-study", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "train-study" in run.stdout
    assert "oneDNN" not in run.stderr and "absl" not in run.stderr, run.stderr


@pytest.mark.parametrize("name", NAMES)
def test_papermill_lists_every_parameter(name):
    # What `papermill --help-notebook` shows and `-p` can set: a line papermill cannot parse is left out of both.
    import papermill

    names, _ = _parameters(name)
    for notebook in (NOTEBOOK_DIR / f"{name}.ipynb", CI_COPY_DIR / f"{name}.ipynb"):
        listed = papermill.inspect_notebook(str(notebook))
        assert list(listed) == names, f"{notebook}: papermill does not parse {sorted(set(names) - set(listed))}"


def test_unknown_notebook_or_profile_is_one_line_and_exit_2():
    for args in (["notebook", "99_nothing"], ["notebook", "02_roc_comparison", "--profile", "reduced"],
                 ["notebook", "01_checkerboard_toy", "--profile", "ci", "-p", "epoch", "3"]):  # a typo of epochs
        run = subprocess.run([sys.executable, "-m", "ssimlib", *args], capture_output=True, text=True)
        assert run.returncode == 2, run.stderr
        assert len(run.stderr.strip().splitlines()) == 1 and "choose from" in run.stderr, run.stderr


@pytest.mark.parametrize("parameter, value, expected", [
    ("stride", "0", "-p stride 0: expected a number above 0 (notebook 04_mvtec_category, default 30)"),
    ("stride", "7.5", "-p stride 7.5: expected a whole number"),
    ("epochs", "-3", "-p epochs -3: expected a number above 0"),
    ("seed", "-1", "-p seed -1: expected a number from 0 up"),
    ("validation_fraction", "1", "-p validation_fraction 1: expected a number in [0, 1)"),
    ("learning_rate", "fast", "-p learning_rate 'fast': expected a number"),
    ("category", "3", "-p category 3: expected text"),
    ("category", "grid/", "-p category 'grid/': expected the name of a category's folder (grid, not a path)"),
    ("train_missing", "maybe", "-p train_missing 'maybe': expected true or false"),
    ("stride", "~", "-p stride None: expected a whole number"),  # None only where the parameters cell allows it
    ("patch_size", "abc", "-p patch_size 'abc': expected a whole number"),  # default None: its kind is known
    ("loss", "ms_ssim", "-p loss 'ms_ssim': expected one of ssim, l2, ssim_l1"),
    ("learning_rate", ".inf", "-p learning_rate inf: expected a finite number"),
    ("learning_rate", "1e999", "-p learning_rate '1e999': expected a finite number"),  # was echoed as inf
    ("seed", "99999999999999", "-p seed 99999999999999: expected a seed below 2**32"),
    ("patch_size", "100", "-p patch_size 100: expected a patch side of 8 * 2**k pixels, k >= 2 (32, 64, 128, 256, "
                          "...) (notebook 04_mvtec_category, default None)"),
    ("profile", "full", "-p profile 'full': the label of another profile; a profile is chosen with --profile (this "
                        "run's is ci, labelled 'ci')"),
])
def test_a_value_a_notebook_cannot_use_is_one_line_before_the_kernel_starts(parameter, value, expected, capsys,
                                                                            monkeypatch):
    # `-p stride 0` ran the notebook, loading data and model, until the sliding window failed in a later cell
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("the kernel was started"))
    assert main(["notebook", "04_mvtec_category", "--profile", "ci", "-p", parameter, value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err


@pytest.mark.parametrize("name, argv, expected", [
    ("05_mvtec_summary", ["-p", "results_dir", "/nonexistent"], "-p results_dir: /nonexistent is not a folder"),
    ("04_mvtec_category", ["-p", "data_root", "/nonexistent"], "-p data_root: /nonexistent is not a folder"),
    ("01_checkerboard_toy", ["-o", "/proc/x.ipynb"], "-o /proc/x.ipynb: cannot write in /proc (it takes no new files)"),
    ("01_checkerboard_toy", ["-o", "out.txt"], "-o out.txt: expected the path of the executed notebook, ending in"),
    ("01_checkerboard_toy", ["-p", "example", "50"], "-p example 50: expected an index below n_test (20; notebook"),
    ("02_roc_comparison", ["-p", "example_image", "3", "-p", "n_test_images", "3"],
     "-p example_image 3: expected an index below n_test_images (3; notebook"),
    ("01_checkerboard_toy", ["-p", "figures_dir", "/proc/figs"], "-p figures_dir: cannot write in /proc"),
])
def test_a_place_a_notebook_cannot_read_or_write_is_one_line_before_the_kernel_starts(name, argv, expected, capsys,
                                                                                      monkeypatch):
    # a missing results_dir gave notebook 05 an empty summary, written over the committed one; an unwritable -o or
    # figures_dir failed after the work, with a traceback
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: pytest.fail("the kernel was started"))
    assert main(["notebook", name, "--profile", "ci", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {expected}"), err


def test_folders_given_with_p_resolve_where_the_command_runs_as_o_does(tmp_path, monkeypatch):
    # a tester's: -p results_dir myres wrote into tests/notebooks/myres, where the ci kernel runs
    import papermill

    seen = {}
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, output, parameters, **kwargs: (
        seen.update(parameters), shutil.copy(source, output)))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    assert main(["notebook", "04_mvtec_category", "--profile", "ci", "-o", "run.ipynb", "-p", "results_dir", "myres",
                 "-p", "figures_dir", "''", "-p", "data_root", "data", "-p", "models_root", "/abs/models"]) == 0
    assert (seen["results_dir"], seen["figures_dir"]) == (str(tmp_path / "myres"), "")  # "": no figures
    assert (seen["data_root"], seen["models_root"]) == (str(tmp_path / "data"), "/abs/models")
    assert (tmp_path / "run.ipynb").is_file()
    # files too (a second tester's: -p results_path mysens.json was read in tests/notebooks/, found empty)
    assert main(["notebook", "03_sensitivity", "--profile", "ci", "-o", "run3.ipynb", "-p", "results_path",
                 "mysens.json"]) == 0
    assert seen["results_path"] == str(tmp_path / "mysens.json")


def test_a_malformed_profile_is_one_line_and_stops_only_its_own_runs(tmp_path, capsys, monkeypatch):
    # a tester's: one bad YAML file in notebooks/params broke every run of that notebook, whatever --profile
    import papermill

    from ssimlib.apps import notebooks

    params = tmp_path / "params"
    shutil.copytree(PARAMS_DIR, params)
    (params / "mine").mkdir()
    (params / "mine" / "05_mvtec_summary.yaml").write_text("results_dir: x\n  bad: [1,\n")
    (params / "listed").mkdir()
    (params / "listed" / "05_mvtec_summary.yaml").write_text("- 1\n")
    monkeypatch.setattr(notebooks, "PARAMS_DIR", params)
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, output, **kwargs: shutil.copy(source, output))
    assert main(["notebook", "05_mvtec_summary", "--profile", "ci", "-o", str(tmp_path / "ok.ipynb")]) == 0
    capsys.readouterr()
    assert main(["notebook", "05_mvtec_summary", "--profile", "mine", "-o", str(tmp_path / "x.ipynb")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {params}/mine/05_mvtec_summary.yaml: not valid YAML ("), err
    assert main(["notebook", "05_mvtec_summary", "--profile", "listed", "-o", str(tmp_path / "x.ipynb")]) == 2
    assert capsys.readouterr().err == (f"error: {params}/listed/05_mvtec_summary.yaml: expected lines of parameter: "
                                       "value, not a YAML list\n")


def test_a_run_that_stops_leaves_the_executed_notebook_as_it_was(tmp_path, capsys, monkeypatch):
    # Ctrl-C in a full run left the committed notebook with the outputs of the cells run so far (papermill writes
    # its output cell by cell)
    import nbformat
    import papermill

    def stopped(source, output, **kwargs):
        notebook = nbformat.read(source, as_version=4)
        notebook.cells = notebook.cells[:2]
        nbformat.write(notebook, output)
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", stopped)
    target = tmp_path / "run.ipynb"
    target.write_text("the earlier run")
    assert main(["notebook", "05_mvtec_summary", "--profile", "ci", "-o", str(target)]) == 130
    assert target.read_text() == "the earlier run"
    assert len(json.loads((tmp_path / "run.failed.ipynb").read_text())["cells"]) == 2
    assert "its .failed.ipynb" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.failed.ipynb", "run.ipynb"]
    # a later run that finishes replaces the output and takes the stopped run's cells away (batch left them beside it)
    monkeypatch.setattr(papermill, "execute_notebook", lambda source, output, **kwargs: shutil.copy(source, output))
    assert main(["notebook", "05_mvtec_summary", "--profile", "ci", "-o", str(target)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ipynb"]


def test_numbers_in_e_notation_are_numbers():
    # YAML 1.1 reads 1e-4 as text: `-p learning_rate 1e-4` was refused as "expected a number"
    from ssimlib.apps.notebooks import check_parameters, parameter_value

    assert parameter_value("1e-4") == pytest.approx(1e-4) and parameter_value("1e3") == 1000
    assert (isinstance(parameter_value("1e3"), int) and parameter_value("2.0") == 2.0
            and parameter_value("grid") == "grid")
    assert parameter_value("") == "" and parameter_value("null") is None  # a tester's: '' was None, then refused
    check_parameters("04_mvtec_category", {"learning_rate": parameter_value("1e-4"), "epochs": parameter_value("1e3"),
                                           "patch_size": 64, "residual": "ssim_l1", "data_root": None})
    check_parameters("02_roc_comparison", {"figures_dir": None, "crops": "fresh"})  # its cell says None: not saved


@pytest.mark.parametrize("name", NAMES)
def test_every_profile_passes_the_value_checks(name):
    from ssimlib.apps.notebooks import check_parameters, profile_names

    for profile in profile_names(name):
        check_parameters(name, profile_parameters(name, profile))  # raises on a value the check refuses


def test_an_output_that_cannot_be_a_notebook_is_one_line(tmp_path, capsys):
    # -o naming a folder, or a path below a file, ended in a traceback after the kernel had started
    (tmp_path / "a_file").write_text("")
    for output, message in ((tmp_path, f"-o {tmp_path}: is a folder; expected the path of the executed notebook"),
                            (tmp_path / "a_file" / "x.ipynb", f"{tmp_path / 'a_file'} is a file, not a folder")):
        assert main(["notebook", "05_mvtec_summary", "--profile", "ci", "-o", str(output)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("ename, status", [("ValueError", 2), ("DatasetError", 2), ("ZeroDivisionError", 1)])
def test_a_cell_that_fails_is_one_line_naming_the_cell_and_the_notebook_with_its_traceback(
        monkeypatch, capsys, ename, status):
    import papermill

    def fail(*args, **kwargs):
        raise papermill.PapermillExecutionError(6, 6, "models = load(crops)", ename,
                                                "crops must be one of fixed, fresh, got 'frehs'", ["Traceback ..."])

    monkeypatch.setattr(papermill, "execute_notebook", fail)
    assert main(["notebook", "02_roc_comparison", "--profile", "ci", "-p", "n_test_images", "5"]) == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: notebook 02_roc_comparison stopped in cell [6]: "), err
    assert f"{ename}: crops must be one of fixed, fresh, got 'frehs'" in err
    assert str(Path("runs", "ci", "02_roc_comparison.failed.ipynb")) in err  # the cells that ran


def test_a_real_kernel_adds_no_start_up_log_to_the_one_line(tmp_path):
    # The kernel's TensorFlow start-up log and its TCP warning went to the terminal before the error line.
    run = subprocess.run([sys.executable, "-m", "ssimlib", "notebook", "04_mvtec_category", "--profile", "ci",
                          "-p", "category", "no_such_category", "-o", str(tmp_path / "out.ipynb")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("error: notebook 04_mvtec_category stopped in cell ["), run.stderr


@pytest.mark.parametrize("name", NAMES)
def test_profiles_other_than_full_write_nothing_committed(name):
    # Every folder a non-full profile writes into, resolved where its kernel runs, lies in gitignored space.
    from ssimlib.apps.notebooks import OUTPUT_PARAMETERS, RUNS_DIR, profile_cwd, run_outputs

    defaults = papermill_defaults(name)
    for profile_file in PARAMS_DIR.glob(f"*/{name}.yaml"):
        profile = profile_file.parent.name
        params = {**defaults, **profile_parameters(name, profile)}
        notebook, folders = run_outputs(name, profile)
        assert RUNS_DIR in notebook.parents and all(RUNS_DIR in Path(f).parents for f in folders.values())
        for key in OUTPUT_PARAMETERS[name]:  # also with plain papermill -f <profile file>
            if params[key]:
                folder = (profile_cwd(profile) / params[key]).resolve()
                ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", str(folder / "x.png")],
                                         cwd=NOTEBOOK_DIR).returncode == 0
                assert ignored, f"{profile_file}: {key} {params[key]} is {folder}, not ignored by git"


def papermill_defaults(name):
    import papermill

    return {key: ast.literal_eval(p["default"])
            for key, p in papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb")).items()}


def test_a_ci_run_of_a_notebook_writes_under_runs(tmp_path, monkeypatch):
    # python -m ssimlib notebook 05_mvtec_summary --profile ci, with runs/ redirected to a temporary folder.
    from ssimlib.apps import notebooks

    committed = {p: (p.read_bytes(), p.stat().st_mtime_ns)
                 for p in [NOTEBOOK_DIR / "05_mvtec_summary.ipynb", *NOTEBOOK_DIR.parent.glob("figures/mvtec/*.p*")]}
    monkeypatch.setattr(notebooks, "RUNS_DIR", tmp_path / "runs")
    assert main(["notebook", "05_mvtec_summary", "--profile", "ci"]) == 0
    assert (tmp_path / "runs" / "ci" / "05_mvtec_summary.ipynb").exists()
    assert list((tmp_path / "runs" / "ci" / "figures" / "mvtec").glob("*.png"))
    assert all((p.read_bytes(), p.stat().st_mtime_ns) == before for p, before in committed.items())


def test_a_short_demo_repeats_itself_across_processes():
    # Two processes, one seed, a short demo (24 steps; the default 1,250 drift, see README): the same final loss
    # (6 decimals) and pixel AUROC.
    import re

    command = [sys.executable, "-m", "ssimlib", "demo", "--epochs", "2", "--n-train", "200"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    lines = [re.sub(r", \d+ s,", ",", run.communicate(timeout=900)[0].strip().splitlines()[-1]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert "final loss" in lines[0] and lines[0] == lines[1], lines


def test_warnings_alike_are_shown_three_times_then_counted_in_one_line(capsys):
    import warnings

    from ssimlib.apps.cli import _warnings_on_stderr

    with _warnings_on_stderr():
        warnings.simplefilter("always")  # a warning repeated at one place, too
        for i in range(5):
            warnings.warn(f"/data/{i}.png: colour image converted to gray for a gray (1-channel) model")
        warnings.warn("/data/7.png: image is 20x20, smaller than the 32x32 patch")
        for _ in range(4):
            warnings.warn("a library's warning: not of a file")
    err = capsys.readouterr().err.splitlines()
    assert err == [
        *(f"warning: /data/{i}.png: colour image converted to gray for a gray (1-channel) model" for i in range(3)),
        "warning: /data/7.png: image is 20x20, smaller than the 32x32 patch",
        *["warning: a library's warning: not of a file"] * 3,
        "warning: 2 more files (not named): colour image converted to gray for a gray (1-channel) model",
        "warning: 1 more time: a library's warning: not of a file",
    ]


def test_a_file_name_of_bytes_that_are_no_utf8_is_printed_as_the_csvs_write_it(tmp_path):
    # a tester's: messages said caf\udce9 (Python's surrogate) where the CSVs and the report say caf\xe9
    import os

    latin_1 = tmp_path / os.fsdecode(b"caf\xe9")
    latin_1.write_text("")
    run = subprocess.run([sys.executable, "-m", "ssimlib", "evaluate", "m", "x", "--out", str(latin_1)],
                         capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert run.returncode == 2
    assert run.stderr.decode("ascii") == f"error: --out: {tmp_path}/caf\\xe9 is a file, not a folder\n"


def test_evaluate_names_every_problem_when_nothing_is_left_to_score_and_refuses_an_empty_mask_suffix(tmp_path,
                                                                                                     capsys):
    # a tester's: only the first problem was named, "(and 3 more problems)"; --mask-suffix '' named a mask instead
    model = Path(__file__).parents[1] / "models" / "checkerboard" / "ssim_ae"
    missing = [tmp_path / name for name in ("a", "b", "c")]
    assert main(["evaluate", str(model), *map(str, missing), "--threshold", "0.5", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {path}: no such file or folder" for path in missing]
    assert main(["evaluate", str(model), str(tmp_path), "--mask-suffix", "", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == ("error: --mask-suffix: expected the end of a mask's name after its image's "
                                       "stem, e.g. _mask.png, got ''\n")


@pytest.mark.parametrize("argv, line", [
    (["evaluate", "m", "", "--out", "o"], "IMAGE_OR_FOLDER: expected an image or a folder, got ''"),
    (["detect", "m", "a", "", "--out", "o"], "IMAGE_OR_FOLDER: expected an image or a folder, got ''"),
    (["detect", " ", "a", "--out", "o"], "MODEL: expected a model path, got ' '"),
    (["train", "", "--out", "o"], "DATA: expected a folder, got ''"),
])
def test_an_empty_argument_is_refused_not_read_as_the_working_folder(argv, line, tmp_path, monkeypatch, capsys):
    # a tester's: evaluate MODEL "$DIR" with DIR unset scored every image below the working folder
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert capsys.readouterr().err == f"error: {line} (an unset shell variable?)\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, line", [
    (["detect"], "error: ssimlib detect: the following arguments are required: model, IMAGE_OR_FOLDER, --out"),
    (["evaluate", "m", "x", "--out", "o", "--precision", "float16"],
     "error: ssimlib evaluate: argument --precision: invalid choice: 'float16' (choose from 'float32', 'bfloat16')"),
    (["nope"], "error: ssimlib: argument command: invalid choice: 'nope'"),
])
def test_a_malformed_command_line_is_refused_in_one_line(argv, line, capsys):
    # argparse printed its whole usage before the error: several lines where one is the rule
    from ssimlib.apps.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith(line) and "(-h lists the options)" in err

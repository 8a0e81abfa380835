"""Training crops as a stream, the validation loss, and the crop-protocol campaign's decision rule (issue #38)."""

import json

import keras
import numpy as np
import pytest

from skimage.metrics import structural_similarity

from ssimlib import artifacts
from ssimlib.data import CropStream
from ssimlib.experiments import nanotwice, protocol, verdicts
from ssimlib.models import ConvAutoencoder
from ssimlib.train import train

IMAGES = [np.random.default_rng(i).random((48, 56, 1), dtype=np.float32) for i in range(2)]


def _model():
    keras.utils.set_random_seed(0)
    return ConvAutoencoder(32, 1, 16)


def _is_crop_of(patch, images, orientations):
    """Whether ``patch`` (p, p) is a window of one of ``images``, turned by one of ``orientations``."""
    for image in images:
        windows = np.lib.stride_tricks.sliding_window_view(image[..., 0], patch.shape)
        for turn in orientations:
            if (np.abs(windows - turn(patch)).max(axis=(2, 3)) == 0).any():
                return True
    return False


def test_a_stream_draws_new_crops_every_epoch_and_the_same_again_for_one_epoch():
    stream = CropStream(IMAGES, 12, 32, seed=3)
    first, second = stream.crops(0), stream.crops(1)
    assert first.shape == stream.shape == (12, 32, 32, 1) and first.dtype == np.float32
    np.testing.assert_array_equal(first, stream.crops(0))  # a resumed run sees what it would have seen
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, CropStream(IMAGES, 12, 32, seed=4).crops(0))
    assert all(_is_crop_of(p[..., 0], IMAGES, [lambda x: x]) for p in np.concatenate([first, second]))
    assert stream.label == "fresh"


def test_flips_and_quarter_turns_are_crops_turned_and_all_turns_occur():
    stream = CropStream(IMAGES, 40, 32, seed=0, flip=True, rot90=True)
    assert stream.label == "fresh+flips+rot90"
    undo = [lambda x, k=k, f=f: np.rot90(x[::-1] if f else x, k) for k in range(4) for f in (False, True)]
    crops = stream.crops(0)[..., 0]
    assert all(_is_crop_of(p, IMAGES, undo) for p in crops)
    plain = sum(_is_crop_of(p, IMAGES, [lambda x: x]) for p in crops)
    assert 0 < plain < len(crops)  # some crops are turned or flipped, not all


def test_training_on_a_stream_resumes_exactly(tmp_path, killed_after_checkpoints):
    stream = CropStream(IMAGES, 16, 32, seed=0)
    reference = _model()
    train(reference, stream, epochs=3, batch_size=8, progress=False)
    with killed_after_checkpoints(2):
        train(_model(), stream, epochs=3, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    resumed = _model()
    train(resumed, stream, epochs=3, batch_size=8, checkpoint_dir=tmp_path, progress=False)
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["settings"]["crops"] == "fresh"
    with pytest.raises(ValueError, match="other settings.*crops"):  # a fixed set must not continue a stream's run
        train(_model(), stream.crops(0), epochs=4, batch_size=8, checkpoint_dir=tmp_path, progress=False)


def test_the_validation_loss_is_the_loss_on_the_validation_patches():
    validation = CropStream(IMAGES, 10, 32, seed=9).crops(0)
    model = _model()
    history = train(model, CropStream(IMAGES, 16, 32), loss="l2", epochs=2, batch_size=8, progress=False,
                    validation=validation)
    assert len(history["val_loss"]) == 2
    expected = np.mean((np.asarray(model.predict_on_batch(validation), np.float64) - validation) ** 2)
    assert history["val_loss"][-1] == pytest.approx(expected, rel=1e-4)


def _run(crops, seed, val_loss, epochs=50):
    return {"crops": crops, "seed": seed, "epochs": epochs, "val_loss": [0.9, val_loss]}


FIXED_AND_FRESH = (_run("fixed", 0, 0.150), _run("fixed", 1, 0.152), _run("fresh", 0, 0.140), _run("fresh", 1, 0.141))


@pytest.mark.parametrize("runs, chosen", [
    # fresh lower by 0.010, seed ranges 0.002 and 0.001: adopted
    ([_run("fixed", 0, 0.150), _run("fixed", 1, 0.152), _run("fresh", 0, 0.140), _run("fresh", 1, 0.141)], "fresh"),
    # fresh lower by 0.003 but fixed's seeds differ by 0.006: the difference is within the spread
    ([_run("fixed", 0, 0.150), _run("fixed", 1, 0.156), _run("fresh", 0, 0.149), _run("fresh", 1, 0.151)], "fixed"),
    # fresh has one seed only
    ([_run("fixed", 0, 0.150), _run("fixed", 1, 0.151), _run("fresh", 0, 0.120)], "fixed"),
    # runs of another budget do not count
    ([_run("fixed", 0, 0.150), _run("fresh", 0, 0.120, 200), _run("fresh", 1, 0.121, 200)], "fixed"),
    # a third protocol with one seed lower still: fresh, which beats fixed with two seeds, is adopted
    ([*FIXED_AND_FRESH, _run("fresh+flips+rot90", 0, 0.130)], "fresh"),
    # flips and turns lower than fresh, but within their seed ranges (0.002): the simpler, fresh
    ([*FIXED_AND_FRESH, _run("fresh+flips+rot90", 0, 0.138), _run("fresh+flips+rot90", 1, 0.140)], "fresh"),
    # flips and turns lower than fresh by 0.006, seed ranges at most 0.002: adopted
    ([*FIXED_AND_FRESH, _run("fresh+flips+rot90", 0, 0.134), _run("fresh+flips+rot90", 1, 0.135)],
     "fresh+flips+rot90"),
    # both lower than fixed crops, but within fixed crops' seed range (0.015): fixed crops stay
    ([_run("fixed", 0, 0.135), _run("fixed", 1, 0.150), _run("fresh", 0, 0.140), _run("fresh", 1, 0.141),
      _run("fresh+flips+rot90", 0, 0.1395), _run("fresh+flips+rot90", 1, 0.1405)], "fixed"),
])
def test_the_decision_rule_reads_validation_losses_against_the_seed_spread(runs, chosen):
    assert verdicts.choose_protocol({"runs": runs})[0] == chosen


def test_results_keep_one_entry_per_arm_and_budget(tmp_path):
    path = tmp_path / "protocol.json"
    protocol.add_result(path, {**_run("fresh", 0, 0.14), "pixel_auroc": 0.5})
    protocol.add_result(path, {**_run("fixed", 1, 0.15), "pixel_auroc": 0.6})
    results = protocol.add_result(path, {**_run("fresh", 0, 0.13), "pixel_auroc": 0.7})
    assert [(r["crops"], r["seed"], r["pixel_auroc"]) for r in results["runs"]] == [("fixed", 1, 0.6),
                                                                                   ("fresh", 0, 0.7)]
    assert protocol.result_for(protocol.read_results(path), "fresh", 0, 50)["pixel_auroc"] == 0.7
    assert results["decision_rule"] == protocol.DECISION_RULE


def _batch(run, batch_size):
    return {**run, "budget": {"batch_size": batch_size}}


def test_an_arm_of_another_batch_size_is_a_protocol_of_its_own(tmp_path):
    path = tmp_path / "protocol.json"
    protocol.add_result(path, {**_run("fresh", 0, 0.14), "budget": {"batch_size": 32}})
    results = protocol.add_result(path, _batch(_run("fresh", 0, 0.10), 128))
    assert len(results["runs"]) == 2 and results["batch_rule"] == protocol.BATCH_RULE
    assert protocol.result_for(results, "fresh", 0, 50, 128)["val_loss"][-1] == 0.10
    assert protocol.result_for(results, "fresh", 0, 50)["val_loss"][-1] == 0.14
    assert (protocol.arm_name("fresh", 0, 128) == "fresh-seed0-batch128"
            and protocol.arm_name("fresh", 0) == "fresh-seed0")
    # far below every arm of batch 32, yet the crop-protocol rule reads batch 32 only
    assert verdicts.choose_protocol({"runs": [*FIXED_AND_FRESH, _batch(_run("fixed", 2, 0.05), 128)]})[0] == "fresh"


def _table(runs):
    """The campaign's table of ``runs`` given the measures it shows."""
    measures = {"pixel_auroc": 0.9, "au_pro_0_3": 0.8, "median_region_overlap_fpr_0_05": 0.7,
                "memorisation": dict.fromkeys(("training_crops", "validation_crops", "defect_free_test_crops"), 0.1)}
    return protocol.format_runs({"runs": [{**r, **measures} for r in runs]})


@pytest.mark.parametrize("batch_loss, chosen", [
    (0.1385, 128),  # below the lower batch-32 seed (0.140) less the seeds' range (0.001): 0.139
    (0.1395, 32),  # below both seeds, but within their range
    (0.150, 32),
])
def test_the_batch_rule_needs_a_margin_of_the_seed_range(batch_loss, chosen):
    runs = [*FIXED_AND_FRESH, _batch(_run("fresh", 0, batch_loss), 128)]
    assert verdicts.choose_variant({"runs": runs}, "batch_size", 128)[0] == chosen
    assert verdicts.choose_variant({"runs": runs[:3] + runs[4:]},
                                   "batch_size", 128)[0] == 32  # one batch-32 seed: no verdict
    lines = _table(runs)
    # its row, its memorisation, its mean, its difference from fixed crops
    assert [line.split("  ")[0] for line in lines if line.startswith("fresh, batch 128")] == [
        "fresh, batch 128", "fresh, batch 128", "fresh, batch 128", "fresh, batch 128 - fixed"]


@pytest.mark.parametrize("batch16_loss, kept, more_than_steps", [
    (0.1200, 16, True),  # wins (below 0.140 - 0.001) and lies below both 100-epoch losses (0.1257, 0.1273)
    (0.1300, 16, False),  # wins, but the batch-32 runs reached less at the same Adam steps
    (0.1395, 32, False),  # within the seed range
])
def test_the_small_batch_rule_reads_the_batch_32_runs_at_the_same_adam_steps(batch16_loss, kept, more_than_steps):
    runs = [*FIXED_AND_FRESH, _batch(_run("fresh", 0, batch16_loss), 16), _batch(_run("fresh", 0, 0.10), 128)]
    curves = [[0.9] * 99 + [0.1257] + [0.05] * 100, [0.9] * 99 + [0.1273] + [0.05] * 100]  # epoch 100: 2x the steps
    chosen, reason = verdicts.small_batch_verdict({"runs": runs}, curves)
    assert chosen == kept
    assert ("below them too" in reason) == more_than_steps and "0.1257, 0.1273" in reason
    assert "reaches epoch 100" in verdicts.small_batch_verdict({"runs": runs}, [[0.1] * 60])[1]
    # by default the committed 200-epoch batch-32 SSIM-AEs' curves, whose epoch-100 losses the rule quotes
    assert verdicts.small_batch_verdict({"runs": runs})[1] == reason
    assert "0.1257 and 0.1273" in protocol.SMALL_BATCH_RULE
    assert verdicts.small_batch_verdict({"runs": runs[:4]}, curves)[0] == 32  # no arm of batch 16 yet
    assert protocol.arm_name(*protocol.Arm("fresh", 0, batch_size=16)) == "fresh-seed0-batch16"


def _decay(run, decay):
    return {**run, "budget": {"batch_size": 32, "decay": decay}}


@pytest.mark.parametrize("decay_loss, chosen", [
    (0.1385, "lr"),  # below the lower plain fresh-crop seed (0.140) less the seeds' range (0.001): 0.139
    (0.1395, "decoupled"),  # below both seeds, but within their range
    (0.150, "decoupled"),
])
def test_an_arm_of_another_weight_decay_reading_is_judged_by_its_own_rule(tmp_path, decay_loss, chosen):
    runs = [*FIXED_AND_FRESH, _decay(_run("fresh", 0, decay_loss), "lr"), _batch(_run("fresh", 0, 0.10), 128)]
    assert verdicts.choose_variant({"runs": runs},
                                   "decay", "lr")[0] == chosen  # the batch-128 arm's 0.10 is not this rule's
    assert verdicts.choose_variant({"runs": runs[1:4]},
                                   "decay", "lr")[0] == "decoupled"  # no verdict without two plain seeds
    assert verdicts.choose_variant({"runs": [*FIXED_AND_FRESH, _decay(_run("fresh", 0, 0.10), "lr")]},
                                   "batch_size", 128)[0] == 32
    assert verdicts.choose_protocol({"runs": [*FIXED_AND_FRESH, _decay(_run("fixed", 2, 0.05), "lr")]})[0] == "fresh"
    assert protocol.arm_name("fresh", 0, 32, "lr") == "fresh-seed0-lrdecay"
    assert protocol.arm_name(*protocol.Arm("fresh", 0, output="sigmoid")) == "fresh-seed0-sigmoid"
    sigmoid = {**_run("fresh", 0, decay_loss), "budget": {"output": "sigmoid"}}
    assert verdicts.choose_variant({"runs": [*runs, sigmoid]}, "output", "sigmoid")[0] == (
        "sigmoid" if chosen == "lr" else "linear")
    assert verdicts.choose_variant({"runs": [*runs[:4], sigmoid]},
                                   "decay", "lr")[0] == "decoupled"  # not the decay rule's arm
    l2 = {**_run("fresh", 0, decay_loss), "budget": {"decay": "l2"}}  # DECAY_RULE's second reading
    assert verdicts.choose_variant({"runs": [*runs[:4], l2]}, "decay", "l2")[0] == (
        "l2" if chosen == "lr" else "decoupled")
    assert verdicts.choose_variant({"runs": [*runs[:4], l2]}, "decay", "lr")[0] == "decoupled"
    for setting, value in (("decay", "sigmoid"), ("output", "linear"), ("crops", "fresh")):
        with pytest.raises(ValueError, match=f"got {setting}={value!r}"):
            verdicts.choose_variant({"runs": runs}, setting, value)
    path = tmp_path / "protocol.json"
    for run in runs:
        results = protocol.add_result(path, run)
    assert len(results["runs"]) == 6 and results["decay_rule"] == protocol.DECAY_RULE
    assert protocol.result_for(results, "fresh", 0, 50, 32, "lr")["val_loss"][-1] == decay_loss
    assert protocol.result_for(results, "fresh", 0, 50)["val_loss"][-1] == 0.140
    lines = _table(runs)
    assert [line.split("  ")[0] for line in lines if line.startswith("fresh, lr decay")] == [
        "fresh, lr decay", "fresh, lr decay", "fresh, lr decay", "fresh, lr decay - fixed"]


def test_campaign_stores_each_arm_and_resumes_an_export_without_its_checkpoint(nanotwice_root, tmp_path):
    budget = {"n_patches": 32, "epochs": 2, "latent_dim": 10}
    kwargs = dict(budget=budget, data_root=nanotwice_root, models_root=tmp_path / "models", n_test_images=1,
                  stride=120, log=lambda line: None)
    results = protocol.run_campaign(tmp_path / "p.json", arms=(protocol.Arm("fresh", 0, 32, "lr", "sigmoid"),),
                                    cache=tmp_path / "c1", **kwargs)
    (entry,) = results["runs"]
    assert (entry["crops"], entry["seed"], entry["epochs"], entry["budget"]["decay"], entry["budget"]["output"]) == (
        "fresh", 0, 2, "lr", "sigmoid")
    assert len(entry["loss"]) == len(entry["val_loss"]) == 2 and entry["optimizer_restarts"] == []
    assert set(entry["memorisation"]) == {"training_crops", "validation_crops", "defect_free_test_crops"}
    assert 0 <= entry["pixel_auroc"] <= 1 and 0 <= entry["median_region_overlap_fpr_0_05"] <= 1
    manifest = json.loads((tmp_path / "models" / "protocol" / "fresh-seed0-lrdecay-sigmoid-e2.json").read_text())
    assert manifest["training"]["settings"]["crops"] == "fresh" and manifest["training"]["settings"]["decay"] == "lr"
    assert manifest["architecture"]["output"] == "sigmoid" and manifest["training"]["settings"]["output"] == "sigmoid"
    # another machine, no checkpoint, the results file lost: the stored arm is evaluated, not retrained
    (tmp_path / "p.json").unlink()
    again = protocol.run_campaign(tmp_path / "p.json", arms=(protocol.Arm("fresh", 0, 32, "lr", "sigmoid"),),
                                  cache=tmp_path / "c2", **kwargs)
    assert again["runs"][0]["loss"] == entry["loss"] and again["runs"][0]["pixel_auroc"] == entry["pixel_auroc"]
    assert not (tmp_path / "c2").exists()


def test_the_arm_of_literal_ssim_constants_trains_and_is_measured_with_them(nanotwice_root, tmp_path):
    arm = protocol.Arm("fresh", 0, constants="literal")
    results = protocol.run_campaign(tmp_path / "p.json", arms=(arm,), budget={"n_patches": 32, "epochs": 1,
                                    "latent_dim": 10}, data_root=nanotwice_root, models_root=tmp_path / "models",
                                    n_test_images=1, stride=120, cache=tmp_path / "c", log=lambda line: None)
    (entry,) = results["runs"]
    assert entry["budget"]["ssim_constants"] == "literal" and "decay" not in entry["budget"]
    assert protocol.protocol_of(entry) == "fresh, literal SSIM constants" and not protocol.is_plain(entry)
    assert protocol.result_for(results, "fresh", 0, 1, constants="literal") is entry
    assert protocol.result_for(results, "fresh", 0, 1) is None and results["constants_rule"] == protocol.CONSTANTS_RULE
    stem = tmp_path / "models" / "protocol" / "fresh-seed0-literalssim-e1"
    assert json.loads(stem.with_suffix(".json").read_text())["training"]["settings"]["ssim_constants"] == "literal"
    # its losses are 1 - SSIM with c1 = 0.01, c2 = 0.03 (skimage's K1 = 0.1, K2 = 0.03 ** 0.5), not the standard
    model, _ = artifacts.load_model(stem)
    dataset = nanotwice.load_dataset(nanotwice_root)
    crops = nanotwice.validation_patches(dataset, 128)[:64]
    output = np.asarray(model.predict_on_batch(crops), np.float64)

    def ssim_loss(k1, k2):
        return np.mean([1 - structural_similarity(x[..., 0].astype(np.float64), y[..., 0], win_size=11, K1=k1,
                                                  K2=k2, use_sample_covariance=False, data_range=1) for x, y in
                        zip(crops, output)])

    literal, standard = ssim_loss(0.1, 0.03**0.5), ssim_loss(0.01, 0.03)
    protocol.compile_autoencoder(model, "ssim", constants="literal")
    measured = protocol.mean_loss(model, crops)
    assert measured == pytest.approx(literal, abs=2e-3) and abs(literal - standard) > 0.02


@pytest.mark.parametrize("scores, above", [((0.94, 0.85, 0.80), True), ((0.94, 0.85, 0.76), False),
                                           ((0.932, 0.85, 0.80), False)])
def test_the_constants_rule_asks_for_all_three_test_scores_above_the_fresh_seeds_by_their_range(scores, above):
    # plain fresh seeds: pixel AUROC 0.927 / 0.930 (range 0.003), AU-PRO 0.80 / 0.81, overlap 0.75 / 0.76
    plain = [{**_run("fresh", s, 0.15), "pixel_auroc": a, "au_pro_0_3": b, "median_region_overlap_fpr_0_05": c}
             for s, a, b, c in ((0, 0.927, 0.80, 0.75), (1, 0.930, 0.81, 0.76))]
    literal = {**_run("fresh", 0, 0.05), "budget": {"ssim_constants": "literal"},
               **dict(zip(("pixel_auroc", "au_pro_0_3", "median_region_overlap_fpr_0_05"), scores))}
    verdict, reason = verdicts.constants_verdict({"runs": [*FIXED_AND_FRESH[:2], *plain, literal]})
    assert verdict is above and "pixel AUROC" in reason and "0.927-0.930" in reason
    assert verdicts.constants_verdict({"runs": plain})[0] is None
    assert verdicts.choose_protocol({"runs": [*FIXED_AND_FRESH, literal]})[0] == "fresh"  # 0.05 is another loss
    memo = {"memorisation": {"training_crops": 0.1, "validation_crops": 0.1, "defect_free_test_crops": 0.1}}
    runs = [{**run, **memo, "pixel_auroc": 0.9, "au_pro_0_3": 0.8, "median_region_overlap_fpr_0_05": 0.7}
            for run in FIXED_AND_FRESH[:2]] + [{**run, **memo} for run in (*plain, literal)]
    (against,) = [line for line in protocol.format_runs({"runs": runs}) if line.startswith("fresh, literal SSIM c")
                  and "- fixed" in line]
    assert against.split()[6] == "(another" and "(one seed)" in against


def test_the_table_gives_each_protocols_mean_and_seed_spread():
    memo = {"training_crops": 0.1, "validation_crops": 0.14, "defect_free_test_crops": 0.16}
    runs = [{"crops": "fresh", "seed": s, "epochs": 50, "val_loss": [0.3, v], "pixel_auroc": a, "au_pro_0_3": 0.8,
             "median_region_overlap_fpr_0_05": 0.7, "memorisation": memo}
            for s, v, a in ((0, 0.12, 0.93), (1, 0.13, 0.94))]
    lines = protocol.format_runs({"runs": runs + [{**runs[0], "crops": "fixed", "epochs": 200}]})
    assert not any(line.startswith("fixed") for line in lines)  # another budget
    mean_line = [line for line in lines if line.startswith("fresh") and "n = 2" in line]
    assert len(mean_line) == 1
    assert "0.1250 (0.0100)" in mean_line[0] and "0.9350 (0.0100)" in mean_line[0]
    # fixed crops with two seeds 0.14 and 0.17 (range 0.03): fresh is 0.03 lower, against the larger range 0.03
    fixed = [{**runs[0], "crops": "fixed", "seed": s, "val_loss": [0.3, v], "pixel_auroc": 0.9} for s, v in
             ((0, 0.14), (1, 0.17))]
    (difference,) = [line for line in protocol.format_runs({"runs": runs + fixed}) if line.startswith("fresh - fixed")]
    assert "-0.0300 (0.0300)" in difference and "+0.0350 (0.0100)" in difference
    (one_seed,) = [line for line in protocol.format_runs({"runs": runs + fixed[:1]}) if line.startswith("fresh -")]
    assert "-0.0150 (one seed)" in one_seed
    assert protocol.format_runs({"runs": []}) == ["no arm of 50 epochs has finished yet"]


def test_the_seed_spread_is_the_larger_range_of_the_protocols_read():
    def run(crops, seed, val, auroc, epochs=50):
        return {"crops": crops, "seed": seed, "epochs": epochs, "val_loss": [0.5, val], "pixel_auroc": auroc,
                "au_pro_0_3": 0.8, "median_region_overlap_fpr_0_05": 0.7}

    results = {"runs": [run("fresh", 0, 0.12, 0.93), run("fresh", 1, 0.15, 0.92), run("fresh", 2, 0.13, 0.96, 200),
                        run("fixed", 0, 0.17, 0.91)]}
    assert protocol.seed_spread(results, ["fresh"]) == pytest.approx(
        {"val_loss": 0.03, "pixel_auroc": 0.01, "au_pro_0_3": 0.0, "median_region_overlap_fpr_0_05": 0.0})
    assert set(protocol.seed_spread(results, ["fresh", "fixed"]).values()) == {None}
    results["runs"].append(run("fixed", 1, 0.18, 0.95))
    assert protocol.seed_spread(results, ["fixed", "fresh"]) == pytest.approx(
        {"val_loss": 0.03, "pixel_auroc": 0.04, "au_pro_0_3": 0.0, "median_region_overlap_fpr_0_05": 0.0})


def test_the_fig6_job_trains_a_protocols_model_of_its_own(nanotwice_root, tmp_path, monkeypatch, capsys):
    from ssimlib.experiments import studies

    monkeypatch.setenv("SSIMLIB_CACHE", str(tmp_path / "cache"))
    schedule = dict(n_patches=32, patch_size=32, latent_dim=8, epochs=2)
    manifest = studies.train_nanotwice_model("L2-AE", schedule, nanotwice_root, tmp_path / "models",
                                             log=lambda line: None, crops="fresh")
    assert manifest["name"] == "l2_ae-fresh" and (tmp_path / "models" / "nanotwice" / "l2_ae-fresh.json").exists()
    assert not (tmp_path / "models" / "nanotwice" / "l2_ae.json").exists()  # the fixed-crop model is another
    training = manifest["training"]
    assert training["settings"]["crops"] == "fresh" and len(training["val_loss"]) == 2
    assert studies.main(["mvtec", "--crops", "fresh"]) == 2
    assert capsys.readouterr().err == "error: --crops: the mvtec study does not take it\n"


def test_another_seed_trains_a_model_of_its_own(nanotwice_root, tmp_path, monkeypatch, capsys):
    from ssimlib.experiments import nanotwice, studies

    assert [nanotwice.fig6_model_name("SSIM-AE", crops, seed, batch) for crops, seed, batch in
            [("fixed", 0, 32), ("fresh", 0, 32), ("fresh", 1, 32), ("fixed", 2, 32), ("fresh", 0, 16)]] == [
        "ssim_ae", "ssim_ae-fresh", "ssim_ae-fresh-seed1", "ssim_ae-seed2", "ssim_ae-fresh-batch16"]
    monkeypatch.setenv("SSIMLIB_CACHE", str(tmp_path / "cache"))
    schedule = dict(n_patches=32, patch_size=32, latent_dim=8, epochs=1, seed=1)
    manifest = studies.train_nanotwice_model("L2-AE", schedule, nanotwice_root, tmp_path / "models",
                                             log=lambda line: None, crops="fresh")
    assert manifest["name"] == "l2_ae-fresh-seed1" and manifest["training"]["settings"]["seed"] == 1
    assert sorted(p.name for p in (tmp_path / "models" / "nanotwice").glob("*.json")) == ["l2_ae-fresh-seed1.json"]
    assert studies.main(["mvtec", "--seed", "1"]) == 2
    assert capsys.readouterr().err == "error: --seed: the mvtec study does not take it\n"


def test_other_models_results_and_figures_are_named_apart():
    # notebook 02 on the batch-16 or a seed-1 model must not overwrite results/nanotwice_roc_comparison.json
    from ssimlib.experiments import nanotwice

    # (batch None: each model's adopted batch size; one given for all names its run)
    assert [nanotwice.fig6_run_suffix(crops, "fresh", seed, batch) for crops, seed, batch in
            [("fresh", 0, None), ("fresh", 1, None), ("fresh", 0, 16), ("fresh", 0, 32), ("fixed", 0, None),
             ("fixed", 2, 16)]] == ["", "_seed1", "_batch16", "_batch32", "_fixed", "_fixed_seed2_batch16"]


def test_another_batch_size_trains_a_model_of_its_own(nanotwice_root, tmp_path, monkeypatch, capsys):
    # SMALL_BATCH_RULE adopted batch 16 for the next 200-epoch SSIM-AE: it must not continue the batch-32 one
    from ssimlib.experiments import nanotwice, studies

    monkeypatch.setenv("SSIMLIB_CACHE", str(tmp_path / "cache"))
    models = tmp_path / "models"
    argv = ["nanotwice", "--models", "L2-AE", "--crops", "fresh", "--epochs", "1", "--data-root", str(nanotwice_root),
            "--models-root", str(models)]
    monkeypatch.setitem(nanotwice.FIG6_SCHEDULE, "n_patches", 32)
    monkeypatch.setitem(nanotwice.FIG6_SCHEDULE, "patch_size", 32)
    monkeypatch.setitem(nanotwice.FIG6_SCHEDULE, "latent_dim", 8)
    assert studies.main(argv + ["--batch-size", "16"]) == 0
    manifest = json.loads((models / "nanotwice" / "l2_ae-fresh-batch16.json").read_text())
    assert manifest["training"]["settings"]["batch_size"] == 16
    assert sorted(p.name for p in (models / "nanotwice").glob("*.json")) == ["l2_ae-fresh-batch16.json"]
    loaded, manifests, missing = nanotwice.load_trained_models(["L2-AE"], models, crops="fresh", batch_size=16)
    assert manifests["L2-AE"]["name"] == "l2_ae-fresh-batch16" and not missing
    _, manifests, missing = nanotwice.load_trained_models(["L2-AE", "VAE"], models, crops="fresh",
                                                          batch_size={"L2-AE": 16, "VAE": 32})  # a batch each
    assert manifests["L2-AE"]["name"] == "l2_ae-fresh-batch16" and missing == ["VAE"]
    assert studies.main(["table2", "--batch-size", "16"]) == 2
    assert capsys.readouterr().err == "error: --batch-size: the table2 study does not take it\n"


def test_train_study_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    from ssimlib.experiments import studies

    # --epochs 0 once trained the whole 200-epoch schedule (0 read as "not given"); -5 exported an empty model
    for argv, message in [(["nanotwice", "--epochs", "0"],
                           "argument --epochs: expected a whole number of at least 1, got '0'"),
                          (["nanotwice", "--epochs", "-5"],
                           "argument --epochs: expected a whole number of at least 1, got '-5'"),
                          (["nanotwice", "--export-every", "0"],
                           "argument --export-every: expected a whole number of at least 1"),
                          (["mvtec", "--setup", "cvpr"], "argument --setup: invalid choice: 'cvpr'"),
                          (["nanotwice", "--batch-size", "0"],
                           "argument --batch-size: expected a whole number of at least 1, got '0'"),
                          (["nanotwice", "--seed", "-1"],
                           "argument --seed: expected a whole number from 0 to 2**32 - 1, got '-1'"),
                          # options a study would have ignored: queue and protocol trained into the repository's models/
                          (["queue", "--models-root", "/tmp/x"],
                           "--models-root: the queue study does not take it (queue "
                           "runs every study with its defaults"),
                          (["table2", "--models-root", "/tmp/x", "--export-every", "5"],
                           "--export-every, --models-root: the table2 study does not take them")]:
        try:
            code = studies.main([*argv, "--models-root", str(tmp_path / "models")])
        except SystemExit as exit_:  # argparse's own checks: its usage, then the error
            code = exit_.code
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        if not message.startswith("argument"):
            assert err.count("\n") == 1, err  # ours: one line
    models, results = ["--models-root", str(tmp_path / "models")], ["--results", str(tmp_path / "r.json")]
    for study, options in (("nanotwice", models), ("table2", results), ("protocol", models + results)):
        # missing data: one line, exit 2, nothing written
        code = studies.main([study, "--data-root", str(tmp_path / "nowhere"), "--epochs", "1", *options])
        errors = [line for line in capsys.readouterr().err.splitlines() if line]
        assert code == 2 and errors == [f"error: {tmp_path / 'nowhere'}: expected a folder with NanoTWICE's Normal/ "
                                        "and Anomalous/ folders, but it does not exist"]
    (tmp_path / "a_file").write_text("")  # mvtec reported each category FAILED, exit 1, and called the file missing
    for root, why in ((tmp_path / "nowhere", "it does not exist"), (tmp_path / "a_file", "it is a file")):
        assert studies.main(["mvtec", "--data-root", str(root), "--models-root", str(tmp_path / "models")]) == 2
        assert capsys.readouterr().err.strip() == f"error: --data-root {root}: {why}"
    assert not (tmp_path / "models").exists() and not (tmp_path / "r.json").exists()


def _store(root, name, crops, epochs_done, schedule_epochs=2, seed=0):
    from ssimlib import artifacts

    keras.utils.set_random_seed(seed)
    model = ConvAutoencoder(32, 1, 8)
    settings = {"loss": "l2", "seed": 0, "n_patches": 6, "patch_size": 32,
                **({} if crops == "fixed" else {"crops": crops})}
    training = {"settings": settings, "epochs_done": epochs_done, "schedule_epochs": schedule_epochs,
                "complete": epochs_done >= schedule_epochs}
    artifacts.save_model(model, artifacts.study_model("nanotwice", name, root), artifacts.architecture_of(model),
                         training)
    return model


def test_the_fig6_models_of_a_protocol_replace_the_fixed_crop_ones_once_finished(tmp_path):
    from types import SimpleNamespace

    from ssimlib.experiments import nanotwice

    fixed = _store(tmp_path, "l2_ae", "fixed", 2)
    _store(tmp_path, "l2_ae-fresh", "fresh", 1, seed=1)  # halfway: the fixed-crop model stays the Fig. 6 one
    models, manifests, missing = nanotwice.load_trained_models(["L2-AE", "SSIM-AE"], tmp_path, crops="fresh")
    assert missing == ["SSIM-AE"] and nanotwice.crops_of(manifests["L2-AE"]) == "fixed"
    np.testing.assert_array_equal(models["L2-AE"].get_weights()[0], fixed.get_weights()[0])
    fresh = _store(tmp_path, "l2_ae-fresh", "fresh", 2, seed=1)
    models, manifests, _ = nanotwice.load_trained_models(["L2-AE"], tmp_path, crops="fresh")
    assert nanotwice.crops_of(manifests["L2-AE"]) == "fresh" and manifests["L2-AE"]["name"] == "l2_ae-fresh"
    np.testing.assert_array_equal(models["L2-AE"].get_weights()[0], fresh.get_weights()[0])
    _, manifests, _ = nanotwice.load_trained_models(["L2-AE"], tmp_path)
    assert manifests["L2-AE"]["name"] == "l2_ae"  # "fixed" asks for the first models
    _, _, missing = nanotwice.load_trained_models(["L2-AE"], tmp_path, crops="fresh", seed=1)
    assert missing == ["L2-AE"]  # another seed: its own models only, never seed 0's
    _store(tmp_path, "l2_ae-fresh-seed1", "fresh", 2, seed=3)
    _, manifests, _ = nanotwice.load_trained_models(["L2-AE"], tmp_path, crops="fresh", seed=1)
    assert manifests["L2-AE"]["name"] == "l2_ae-fresh-seed1"
    with pytest.raises(ValueError, match="crops must be one of fixed, fresh, fresh\\+flips\\+rot90, got 'frehs'"):
        nanotwice.load_trained_models(["L2-AE"], tmp_path, crops="frehs")

    # the crops a model saw last: its fixed set's first ones, or its last epoch's
    dataset = SimpleNamespace(train_images=IMAGES, train_paths=None)
    manifest = {"training": {"settings": {"seed": 0, "n_patches": 6, "patch_size": 32, "crops": "fresh"},
                             "epochs_done": 2}}
    last_epoch = nanotwice.own_training_crops(dataset, manifest, 4)
    np.testing.assert_array_equal(last_epoch, CropStream(IMAGES, 6, 32, seed=0).crops(1)[:4])


def _manifest(val_loss, epochs_done=200, sha="a" * 64):
    return {"sha256": sha, "training": {"epochs_done": epochs_done, "schedule_epochs": 200,
                                        "val_loss": [0.5] * (epochs_done - 1) + [val_loss]}}


@pytest.mark.parametrize("loss16, auroc16, chosen", [
    (0.0900, 0.7600, "ssim_ae-fresh-batch16"),  # below 0.0970 (0.0996 less the range 0.0026), above 0.7539
    (0.0975, 0.7600, "ssim_ae-fresh"),  # below both seeds, but not by more than their range
    (0.0900, 0.7535, "ssim_ae-fresh"),  # above both seeds' AUROC, but not by more than 0.004
])
def test_the_batch16_verdict_needs_both_the_loss_and_the_synthetic_defects(loss16, auroc16, chosen):
    manifests = {"ssim_ae-fresh": _manifest(0.0996), "ssim_ae-fresh-seed1": _manifest(0.1022),
                 "ssim_ae-fresh-batch16": _manifest(loss16, sha="b" * 64)}
    synthetic = {"models": {"ssim_ae-fresh": {"pixel_auroc": 0.7499}, "ssim_ae-fresh-seed1": {"pixel_auroc": 0.7495},
                            "ssim_ae-fresh-batch16": {"pixel_auroc": auroc16, "weights_sha256": "b" * 64}}}
    assert verdicts.fig6_batch16_verdict(manifests, synthetic)[0] == chosen
    # notebook 02's default Fig. 6 models: the SSIM-AE at the batch the verdict chose, the others at 32
    batches = verdicts.fig6_batch_sizes(manifests, synthetic)
    assert batches == {"L2-AE": 32, "VAE": 32, "FM-AE": 32, "SSIM-AE": 16 if chosen.endswith("batch16") else 32}


def test_no_batch16_verdict_before_the_model_has_finished_and_been_measured():
    manifests = {"ssim_ae-fresh": _manifest(0.0996), "ssim_ae-fresh-seed1": _manifest(0.1022),
                 "ssim_ae-fresh-batch16": _manifest(0.09, epochs_done=70, sha="b" * 64)}
    measured = {"models": {"ssim_ae-fresh-batch16": {"pixel_auroc": 0.9, "weights_sha256": "b" * 64}}}
    assert verdicts.fig6_batch16_verdict(manifests, measured) == (
        None, "no verdict yet: ssim_ae-fresh-batch16 has trained 70 of its 200 epochs")
    manifests["ssim_ae-fresh-batch16"] = _manifest(0.09, sha="c" * 64)  # finished, but measured at epoch 70
    chosen, reason = verdicts.fig6_batch16_verdict(manifests, measured)
    assert chosen is None and "synthetic-defect measure of the finished ssim_ae-fresh-batch16 is missing" in reason
    assert verdicts.fig6_batch16_verdict(manifests, {"models": {}})[0] is None
    manifests["ssim_ae-fresh-batch16"] = None  # not in the store (read_manifest's None)
    assert verdicts.fig6_batch16_verdict(manifests, measured) == (
        None, "no verdict yet: ssim_ae-fresh-batch16 is not in the model store")

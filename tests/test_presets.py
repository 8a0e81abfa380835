"""MVTec AD presets and anchors (ssimlib.experiments.presets), the per-category helpers
(ssimlib.experiments.mvtec) and the summary (ssimlib.experiments.mvtec_summary)."""

import json

import numpy as np
import pytest

from ssimlib.experiments import mvtec, mvtec_runs, mvtec_summary, presets


def test_one_preset_per_category_from_the_table():
    assert sorted(presets.PRESETS) == sorted(presets.CATEGORIES) and len(presets.CATEGORIES) == 15
    for name in presets.TEXTURES:
        p = presets.PRESETS[name]
        assert (p.kind, p.patch_size, p.latent_dim, p.background) == ("texture", 128, 100, None)
        assert p.resize == (512 if name == "carpet" else 256)
        assert p.rotate and p.rotate_crop and p.flip == "both"
    for name in presets.OBJECTS:
        p = presets.PRESETS[name]
        assert (p.kind, p.resize, p.patch_size, p.latent_dim) == ("object", 266, 256, 500)
    assert presets.PRESETS["carpet"].max_angle == 10 and presets.PRESETS["wood"].max_angle == 15
    assert {n for n, p in presets.PRESETS.items() if p.gray} == {"grid", "screw", "zipper"}
    assert {n for n, p in presets.PRESETS.items() if p.rotate and not p.rotate_crop} == {"hazelnut", "metal_nut"}
    assert {n for n, p in presets.PRESETS.items() if p.kind == "object" and p.rotate_crop and p.rotate} == set()
    flips = {n: p.flip for n, p in presets.PRESETS.items() if p.kind == "object"}
    assert {n for n, f in flips.items() if f == "none"} == {"cable", "capsule", "metal_nut", "pill"}
    assert {n for n, f in flips.items() if f == "horizontal"} == {"toothbrush", "transistor"}
    backgrounds = {n: p.background for n, p in presets.PRESETS.items() if p.background}
    assert backgrounds == {"bottle": "white", "capsule": "white", "screw": "white",
                           "hazelnut": "black", "metal_nut": "black", "pill": "black"}
    for p in presets.PRESETS.values():
        assert p.residual == ("ssim" if p.gray else "ssim_l1")
        assert p.loss == "ssim"


def test_a_preset_recorded_by_an_earlier_version_loads():
    recorded = {**presets.cvpr2019_preset("bottle", "l2").as_dict(),
                "n_patches": 10000, "epochs": 200, "batch_size": 128, "learning_rate": 2e-4}
    assert presets.CategoryPreset.from_dict(recorded) == presets.cvpr2019_preset("bottle", "l2")
    assert "batch_size" not in presets.CategoryPreset.from_dict(recorded).as_dict()


def test_unknown_category_gets_the_default_and_overrides_apply():
    p = presets.get_preset("my_parts")
    assert p.name == "my_parts" and p.kind == "unknown" and p.residual is None
    assert presets.configure("my_parts", channels=1).residual == "ssim"
    assert presets.configure("my_parts", channels=3).residual == "ssim_l1"
    p = presets.configure("bottle", patch_size=64, latent_dim=10, resize=100, loss="l2")
    assert (p.patch_size, p.latent_dim, p.resize, p.residual, p.loss) == (64, 10, 100, "l2", "l2")
    assert presets.configure("bottle", residual="ssim").residual == "ssim"
    assert "white background masked" in presets.describe(presets.configure("bottle"))
    assert "horizontal flips" in presets.describe(presets.configure("toothbrush"))


def test_anchors_cover_every_category_and_match_the_means():
    assert set(presets.PAPER_PIXEL_AUROC) == set(presets.CATEGORIES)
    for model in ("SSIM-AE", "L2-AE"):
        mean = np.mean([v[model] for v in presets.PAPER_PIXEL_AUROC.values()])
        assert mean == pytest.approx(presets.PAPER_MEAN_PIXEL_AUROC[model], abs=0.006)
    assert presets.PAPER_MEAN_AU_PRO == {"SSIM-AE": 0.694, "L2-AE": 0.790}
    assert presets.model_label("ssim") == "SSIM-AE" and presets.model_label("l2") == "L2-AE"


def _ramp(size=96):
    """Gray image whose value grows to the right and downwards: flips show in the gradients' signs."""
    y, x = np.mgrid[0:size, 0:size] / size
    return (0.3 * x + 0.6 * y).astype(np.float32)[..., None]


@pytest.mark.parametrize("flip", ["none", "horizontal", "both"])
def test_training_patches_flip_as_the_preset_says(flip):
    preset = presets.configure("my_parts", patch_size=32)
    preset = presets.CategoryPreset(**{**preset.as_dict(), "flip": flip})
    patches = mvtec.training_patches([_ramp()], preset, 64, seed=1).astype(np.float32)
    assert (patches.shape == (64, 32, 32, 1)
            and mvtec.training_patches([_ramp()], preset, 64, seed=1).dtype == np.float16)
    right = np.sign(patches[:, :, -1].mean((1, 2)) - patches[:, :, 0].mean((1, 2)))
    down = np.sign(patches[:, -1].mean((1, 2)) - patches[:, 0].mean((1, 2)))
    assert (right < 0).any() == (flip != "none")
    assert (down < 0).any() == (flip == "both")
    again = mvtec.training_patches([_ramp()], preset, 64, seed=1).astype(np.float32)
    assert np.array_equal(patches, again)


def test_rotation_without_crop_fills_corners_with_the_background():
    image = np.full((40, 40, 3), 0.5, np.float32)
    turned = mvtec.rotate_whole(image, 45, "black")
    assert turned[0, 0].max() == 0 and turned[20, 20].min() == pytest.approx(0.5)
    assert mvtec.rotate_whole(image, 45, "white")[0, 0].min() == 1
    preset = presets.configure("hazelnut", patch_size=32)
    patches = mvtec.training_patches([np.full((34, 34, 3), 0.5, np.float32)], preset, 200, seed=0)
    assert patches.shape == (200, 32, 32, 3)
    corners_black = (patches.astype(np.float32)[:, 0, 0] < 0.25).all(axis=-1)
    assert 0.1 < corners_black.mean() < 0.5  # about 30 % are rotated


def test_object_mask_keeps_the_object_and_its_dark_defects():
    image = np.ones((64, 64, 3), np.float32)  # white background
    yy, xx = np.mgrid[0:64, 0:64]
    disk = (yy - 32) ** 2 + (xx - 32) ** 2 < 20**2
    image[disk] = 0.4
    image[30:34, 30:34] = 1.0  # a white hole in the object
    mask = mvtec.object_mask(image, "white")
    assert mask[disk].all() and not mask[:5, :5].any()
    black = 1 - image[..., :1]  # black background, gray image
    assert mvtec.object_mask(black, "black")[disk].all()
    assert mvtec.object_mask(np.ones((8, 8, 1)), "white").all()  # nothing but background: keep all
    residual = np.ones((64, 64), np.float32)
    suppressed = mvtec.suppress_background(residual, image, "white")
    assert suppressed[0, 0] == 0 and suppressed[32, 32] == 1
    assert mvtec.suppress_background(residual, image, None) is residual
    with pytest.raises(ValueError, match="background"):
        mvtec.object_mask(image, "gray")


def test_split_validation_is_disjoint_and_reproducible():
    images = [np.full((4, 4, 1), i, np.float32) for i in range(20)]
    train, validation, held_out = mvtec.split_validation(images, 0.1, seed=3)
    assert len(train) == 18 and len(validation) == 2
    assert {int(x[0, 0, 0]) for x in validation} == set(held_out.tolist())
    assert not {int(x[0, 0, 0]) for x in train} & set(held_out.tolist())
    assert np.array_equal(mvtec.split_validation(images, 0.1, seed=3)[2], held_out)
    assert len(mvtec.split_validation(images, 0.0)[1]) == 0
    with pytest.raises(ValueError):
        mvtec.split_validation(images, 1.0)


def _maps(rng, n, defect):
    maps = [rng.random((32, 32)).astype(np.float32) * 0.5 for _ in range(n)]
    masks = [np.zeros((32, 32), bool) for _ in range(n)]
    if defect:
        for a, m in zip(maps, masks):
            m[8:16, 8:16] = True
            a[m] += 1.0
    return maps, masks


def test_category_metrics_threshold_from_validation_only():
    rng = np.random.default_rng(0)
    validation, _ = _maps(rng, 3, defect=False)
    test, masks = _maps(rng, 4, defect=True)
    labels = np.ones(4, int)
    metrics = mvtec.category_metrics(test, masks, labels, validation, min_defect_area=20)
    assert metrics["image_auroc"] is None and metrics["good_correct"] is None
    assert metrics["defective_correct"] == 1.0 and metrics["pixel_auroc"] == 1.0
    brighter = [a + 10 for a in test]
    assert mvtec.category_metrics(brighter, masks, labels, validation, 20)["threshold"] == metrics["threshold"]
    lines = mvtec.metric_lines(metrics, "grid", "ci", "ssim")
    assert lines[0] == "pixel AUROC, MVTec AD grid, profile ci: SSIM-AE 1.00 (paper SSIM-AE 0.94 | L2-AE 0.90)"
    assert lines[2].endswith("n/a: no defect-free test images")
    good, good_masks = validation[:2], [np.zeros((32, 32), bool)] * 2  # as defect-free as the validation maps
    metrics = mvtec.category_metrics(test + good, masks + good_masks, np.r_[labels, 0, 0], validation, 20)
    assert metrics["image_auroc"] == 1.0 and metrics["good_correct"] == 1.0


def test_summary_rows_mark_missing_categories(tmp_path):
    record = {"category": "grid", "profile": "reduced-cpu", "complete": True, "settings": {"loss": "ssim"},
              "metrics": {"pixel_auroc": 0.8, "au_pro@0.3": 0.5, "image_auroc": None,
                          "good_correct": None, "defective_correct": 0.7}}
    (tmp_path / "grid.json").write_text(json.dumps(record))
    l2 = {**record, "setup": "cvpr2019", "settings": {"loss": "l2"},
          "metrics": {**record["metrics"], "pixel_auroc": 0.7},
          "model_store": {"epochs_done": 50, "schedule_epochs": 200}}
    (tmp_path / "grid-l2-cvpr2019.json").write_text(json.dumps(l2))
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "half.json").write_text(json.dumps({"category": "tile", "complete": False, "metrics": {}}))
    records = mvtec_summary.load_results(tmp_path)
    assert set(records) == {("grid", "SSIM-AE", "reimplementation"), ("grid", "L2-AE", "cvpr2019")}
    rows = mvtec_summary.summary_rows(records)
    assert len(rows) == 16  # two models of grid, one "missing" row for each of the other 14
    assert sum(r["profile"] == "missing" for r in rows) == 14
    table = mvtec_summary.format_table(rows)
    # each model beside its own Table 3 anchor (grid: SSIM-AE 0.94, L2-AE 0.90); a record without a setup
    # came from the re-implementation's presets
    # and says how many epochs of its schedule the model had, where the record says
    assert ("grid        SSIM-AE  reimplementation reduced-cpu        -        0.80   0.94       0.50         n/a"
            in table)
    assert ("grid        L2-AE    cvpr2019         reduced-cpu   50/200        0.70   0.90       0.50         n/a"
            in table)
    assert "carpet      -        -                missing" in table
    assert "SSIM-AE, mean of the 1 of 15 present" in table and "L2-AE, mean of the 1 of 15 present" in table
    assert mvtec_runs.results_path(tmp_path, "metal_nut", "l2", "cvpr2019") == tmp_path / "metal_nut-l2-cvpr2019.json"


def test_model_gaps_pair_the_two_models_of_one_setup_and_profile():
    def row(category, model, setup, pixel, au_pro, paper, epochs="50/200", profile="full"):
        return {"category": category, "model": model, "setup": setup, "profile": profile, "epochs": epochs,
                "pixel_auroc": pixel, "au_pro": au_pro, "paper": paper}

    rows = [
        row("bottle", "SSIM-AE", "cvpr2019", 0.95, 0.87, 0.93), row("bottle", "L2-AE", "cvpr2019", 0.88, 0.66, 0.86),
        row("grid", "SSIM-AE", "cvpr2019", 0.97, None, 0.94, epochs=None),
        row("grid", "L2-AE", "cvpr2019", 0.82, 0.71, 0.90, epochs="60/200"),
        row("tile", "SSIM-AE", "cvpr2019", 0.60, 0.4, 0.59),  # no L2-AE
        row("wood", "SSIM-AE", "cvpr2019", 0.70, 0.5, 0.73), row("wood", "L2-AE", "reimplementation", 0.6, 0.4, 0.73),
        row("mine", "SSIM-AE", "cvpr2019", 0.9, 0.8, None, epochs="200/200"),
        row("mine", "L2-AE", "cvpr2019", 0.8, 0.5, None),
    ]
    gaps = mvtec_summary.model_gaps(rows)
    assert [g["category"] for g in gaps] == ["bottle", "grid", "mine"]  # tile: one model; wood: two setups
    assert gaps[0]["pixel_auroc"] == pytest.approx(0.07) and gaps[0]["paper"] == pytest.approx(0.07)
    assert gaps[0]["au_pro"] == pytest.approx(0.21)
    assert gaps[1]["au_pro"] is None and gaps[1]["epochs"] == "- | 60/200" and gaps[2]["paper"] is None
    table = mvtec_summary.format_gaps(gaps)
    assert "bottle      cvpr2019         full           50/200 | 50/200       +0.07  +0.07      +0.21" in table
    assert "grid        cvpr2019         full                - | 60/200       +0.15  +0.04          -" in table
    notes = [line for line in table.splitlines() if "different epochs" in line]  # only where both are known and differ
    assert notes == ["mine (cvpr2019, full): the two models have had different epochs (200/200 | 50/200), "
                     "so this difference is not one of equal budgets"]
    assert "no category" in mvtec_summary.format_gaps([])


def test_results_keep_the_metrics_of_earlier_stages_of_the_same_run(tmp_path):
    def record(epochs, pixel, stride=30, sha="a"):
        return {"category": "grid", "profile": "full", "setup": "cvpr2019", "complete": True, "model": "SSIM-AE",
                "settings": {"loss": "ssim", "stride": stride, "image_size": (256, 256)},
                "metrics": {"pixel_auroc": pixel, "au_pro@0.3": pixel - 0.1, "image_auroc": None,
                            "good_correct": None, "defective_correct": 0.5},
                "model_store": {"name": "grid-ssim-cvpr2019", "epochs_done": epochs, "schedule_epochs": 200,
                                "sha256": sha, "settings": {"epochs": 200, "batch_size": 32}},
                "time": {"finished": f"day {epochs}"}}

    def stored():
        return json.loads(mvtec_runs.results_path(tmp_path, "grid", "ssim", "cvpr2019").read_text())

    mvtec.write_results(tmp_path, record(50, 0.90, sha="s50"))
    assert "earlier" not in stored()
    mvtec.write_results(tmp_path, record(120, 0.93, sha="s120"))
    mvtec.write_results(tmp_path, record(200, 0.95))
    mvtec.write_results(tmp_path, record(200, 0.95))  # re-evaluated: the stages stay, the current one is not added
    result = stored()
    assert result["metrics"]["pixel_auroc"] == 0.95
    assert [(e["epochs_done"], e["pixel_auroc"], e["sha256"], e["finished"]) for e in result["earlier"]] == [
        (50, 0.90, "s50", "day 50"), (120, 0.93, "s120", "day 120")]
    table = mvtec_summary.format_progress(mvtec_summary.load_results(tmp_path))
    assert [line.split()[-4:] for line in table.splitlines()[2:]] == [
        ["50/200", "0.900", "0.800", "n/a"], ["120/200", "0.930", "0.830", "n/a"], ["200/200", "0.950", "0.850", "n/a"]]
    # Another evaluation setting, or a model retrained from scratch, is not the same run at another stage.
    mvtec.write_results(tmp_path, record(200, 0.94, stride=60))
    assert "earlier" not in stored()
    mvtec.write_results(tmp_path, record(200, 0.95))
    mvtec.write_results(tmp_path, record(10, 0.6))
    assert "earlier" not in stored()
    assert "no results file" in mvtec_summary.format_progress(mvtec_summary.load_results(tmp_path))


def test_stored_losses_are_read_from_the_manifests_of_one_setup(tmp_path):
    folder = tmp_path / "mvtec"
    folder.mkdir()
    for name, loss, setup, values in (("grid-ssim-cvpr2019", "ssim", "cvpr2019", [0.5, 0.2, 0.1]),
                                      ("metal_nut-l2-cvpr2019", "l2", "cvpr2019", [0.03, 0.02]),
                                      ("grid-ssim-reimplementation", "ssim", "reimplementation", [0.4])):
        training = {"preset": {"loss": loss, "setup": setup}, "loss": values}
        (folder / f"{name}.json").write_text(json.dumps({"training": training}))
    losses = mvtec_summary.stored_losses(tmp_path)
    assert losses == {("grid", "SSIM-AE"): [0.5, 0.2, 0.1], ("metal_nut", "L2-AE"): [0.03, 0.02]}
    fig = mvtec_summary.plot_training_losses(losses, mark=2)
    assert [len(ax.get_lines()) for ax in fig.axes] == [2, 2]  # one curve and the stage mark per panel
    assert list(fig.axes[0].get_lines()[0].get_ydata()) == [0.5, 0.2, 0.1]
    assert mvtec_summary.stored_losses(tmp_path, setup="reimplementation") == {("grid", "SSIM-AE"): [0.4]}


def test_cvpr2019_setup_is_what_the_paper_states():
    grid = presets.configure("grid", setup="cvpr2019")
    assert (grid.setup, grid.latent_dim, grid.patch_size, grid.gray, grid.residual) == (
        "cvpr2019", 100, 128, True, "ssim")
    assert grid.rotate and grid.rotate_crop
    # Objects: whole images at 256 px (one more stride-2 layer than Table I's 128 px), d = 100.
    bottle = presets.configure("bottle", setup="cvpr2019")
    assert (bottle.resize, bottle.patch_size, bottle.latent_dim) == (256, 256, 100)
    assert bottle.gray and bottle.residual == "ssim"  # the SSIM-AE sees gray images
    assert bottle.rotate and not bottle.rotate_crop and bottle.flip == "both"
    l2 = presets.configure("bottle", loss="l2", setup="cvpr2019")
    assert l2.gray is False and l2.residual == "l2" and l2.loss == "l2"  # the L2-AE keeps colour
    cable = presets.configure("cable", setup="cvpr2019")
    assert not cable.rotate and cable.flip == "none"  # as far as the object allows
    assert "cvpr2019 setup" in presets.describe(bottle)
    assert presets.configure("bottle").setup == "reimplementation" and presets.configure("bottle").latent_dim == 500
    with pytest.raises(ValueError, match="setup must be one of cvpr2019, reimplementation"):
        presets.configure("grid", setup="cvpr")


def test_the_residuals_checked_before_keras_loads_are_the_ones_inference_computes():
    from ssimlib.experiments.presets import RESIDUALS
    from ssimlib.inference import RESIDUAL_KINDS

    assert RESIDUALS == RESIDUAL_KINDS

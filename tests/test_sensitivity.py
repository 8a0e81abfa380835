"""The Table II campaign: resumable, one result per finished setting, the base setting taken from a snapshot."""

import json

import pytest

from ssimlib.experiments import nanotwice, protocol, sensitivity
from ssimlib.train import train

TINY = dict(n_patches=32, epochs=1, batch_size=16)
SETTINGS = [(8, 3, 32), (8, 11, 32)]


def campaign(tmp_path, root, **kwargs):
    lines = []
    results = sensitivity.run_campaign(
        tmp_path / "table2.json", budget=TINY, data_root=root, cache=tmp_path / "cache", n_test_images=1,
        stride=128, log=lines.append, **kwargs,
    )
    return results, lines


def test_the_eleven_settings_are_table_ii():
    settings = sensitivity.settings_of_table2()
    assert settings[0] == (500, 11, 128) and len(settings) == 11
    for factor, i in (("latent_dim", 0), ("window_size", 1), ("patch_size", 2)):
        varied = sorted(s[i] for s in settings if all(s[j] == settings[0][j] for j in range(3) if j != i))
        assert varied == sorted(nanotwice.PAPER_TABLE_II[factor])


def test_campaign_adds_each_setting_once_and_resumes_after_a_failure(nanotwice_root, tmp_path, monkeypatch):
    evaluate = nanotwice.evaluate_config

    def fail_on_window_11(model, method, images, masks, **kwargs):
        if kwargs["window_size"] == 11:
            raise RuntimeError("interrupted")
        return evaluate(model, method, images, masks, **kwargs)

    monkeypatch.setattr(nanotwice, "evaluate_config", fail_on_window_11)
    with pytest.raises(RuntimeError, match="interrupted"):
        campaign(tmp_path, nanotwice_root, settings=SETTINGS)
    partial = json.loads((tmp_path / "table2.json").read_text())  # a valid file with the finished setting
    assert [(r["latent_dim"], r["window_size"], r["patch_size"]) for r in partial["settings"]] == [SETTINGS[0]]

    monkeypatch.setattr(nanotwice, "evaluate_config", evaluate)
    results, lines = campaign(tmp_path, nanotwice_root, settings=SETTINGS)
    assert "1 of 2 settings done" in lines[0]
    entries = {(r["latent_dim"], r["window_size"], r["patch_size"]): r for r in results["settings"]}
    assert set(entries) == set(SETTINGS)
    assert entries[SETTINGS[0]] == partial["settings"][0]  # not retrained, not re-evaluated
    for entry in entries.values():
        assert 0.0 <= entry["pixel_auroc"] <= 1.0 and 0.0 <= entry["au_pro_0_3"] <= 1.0
        assert entry["epochs"] == 1 and entry["stride"] == nanotwice.scaled_stride(128, 32) == 32
        assert entry["budget"]["n_patches"] == 32 and entry["machine"]["backend"]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished setting was trained again")

    monkeypatch.setattr(nanotwice, "train_config", no_training)
    again, lines = campaign(tmp_path, nanotwice_root, settings=SETTINGS)
    assert again == results and "2 of 2 settings done" in lines[0]


def test_the_base_setting_is_the_fig6_snapshot(nanotwice_root, tmp_path):
    budget = {**sensitivity.TABLE2_BUDGET, **TINY}
    snapshot = sensitivity.base_snapshot_dir(tmp_path / "cache", budget["epochs"])
    dataset = nanotwice.load_dataset(nanotwice_root)
    patches = nanotwice.training_patches(dataset, budget["n_patches"], 128, budget["seed"])
    model = nanotwice.build_model("SSIM-AE", 128, 500, budget["seed"])
    train(model, patches, "ssim", epochs=budget["epochs"], batch_size=budget["batch_size"], seed=budget["seed"],
          progress=False, checkpoint_dir=snapshot)  # what train-study nanotwice copies at the budget's epoch
    state = json.loads((snapshot / "state.json").read_text())
    assert len(state["history"]["loss"]) == 1
    results, lines = campaign(tmp_path, nanotwice_root, settings=[sensitivity.BASE])
    assert any("is this setting" in line for line in lines)
    assert results["settings"][0]["training_seconds"] == state["history"]["seconds"]


@pytest.mark.parametrize("campaign, entries, kind", [(sensitivity, "settings", "Table II campaign"),
                                                     (protocol, "runs", "protocol campaign")])
def test_a_broken_results_file_is_named(campaign, entries, kind, tmp_path):
    path = tmp_path / "campaign.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="campaign.json is not valid JSON"):
        campaign.read_results(path)
    path.write_text(f'{{"{entries}": {{"n_patches": 500}}}}')
    with pytest.raises(ValueError, match=f"no '{entries}' list: it is not a {kind} file"):
        campaign.read_results(path)


def test_the_fig6_job_keeps_its_checkpoint_at_the_budget(nanotwice_root, tmp_path, monkeypatch):
    from ssimlib.experiments import studies

    monkeypatch.setenv("SSIMLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(studies, "TABLE2_EPOCHS", 2)
    schedule = dict(n_patches=32, patch_size=32, latent_dim=8, epochs=3)
    studies.train_nanotwice_model("SSIM-AE", schedule, nanotwice_root, tmp_path / "models", log=lambda line: None)
    snapshot = sensitivity.base_snapshot_dir(tmp_path / "cache", 2)
    state = json.loads((snapshot / "state.json").read_text())
    assert len(state["history"]["loss"]) == 2 and (snapshot / state["weights"]).exists()


def test_paper_trends_are_judged_on_the_entries_and_wait_for_missing_ones():
    def entry(d, k, p, auroc):
        return {"latent_dim": d, "window_size": k, "patch_size": p, "pixel_auroc": auroc}

    results = {"settings": [entry(50, 11, 128, 0.80), entry(500, 11, 128, 0.90), entry(200, 11, 128, 0.88),
                            entry(1000, 11, 128, 0.86), entry(32, 11, 128, 0.5)]}  # the last: not a Table II cell
    verdicts = {claim: (ours, paper, holds) for claim, ours, paper, holds in sensitivity.paper_trends(results)}
    assert verdicts["d = 50 clearly below d = 500"] == ({50: 0.80, 500: 0.90}, {50: 0.848, 500: 0.966}, True)
    assert verdicts["d = 200, 500 and 1000 within a few points of each other"][2] is False  # 0.04 apart
    ours, paper, holds = verdicts["K = 3 below each of K = 7, 11 and 15"]
    assert ours == {11: 0.90} and holds is None
    assert verdicts["patch sizes 32, 64 and 128 within a few points of each other"][2] is None
    results["settings"][0]["pixel_auroc"] = 0.88  # only 0.02 below d = 500: not "clearly"
    assert sensitivity.paper_trends(results)[0][3] is False

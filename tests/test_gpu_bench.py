"""bench/gpu.py, the prepared GPU run, runs end to end at a tiny size on the CPU (on whatever backend this is)."""

import json
import os
import subprocess
import sys

from ssimlib import artifacts
from ssimlib.paths import REPO_ROOT


def test_gpu_run_writes_every_result_at_a_tiny_size(nanotwice_root, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, str(REPO_ROOT / "bench" / "gpu.py"), "--tiny", "--out", str(out),
               "--data", str(nanotwice_root), "--checkpoints", str(tmp_path / "checkpoints"),
               "--budget-seconds", "1e6", "--crops", "fresh"]  # a busy CPU must not leave the one epoch of training out
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    read = {name: json.loads((out / name).read_text())
            for name in ("env.json", "parity.json", "timing.json", "throughput.json")}
    assert read["env.json"]["versions"]["keras"]
    assert read["parity.json"]["agree"] and set(read["parity.json"]["comparisons"]) == {"here_vs_cpu"}
    assert read["timing.json"]["paper"] == {"forward_ms": 2.23, "image_s": 3.61, "device": "NVIDIA Tesla V100"}
    assert read["timing.json"]["forward_ms_batch_1"] > 0 and read["timing.json"]["image_s"] > 0
    assert [(r["policy"], r["batch_size"]) for r in read["throughput.json"]["rows"]] == [
        ("float32", 8), ("mixed_bfloat16", 8)]
    model, manifest = artifacts.load_model(out / "ssim_ae-fresh-seed2")  # the store's name: the CPU can continue it
    assert manifest["gpu"] == "none (CPU)"
    assert manifest["training"]["epochs_done"] == 1 and manifest["training"]["schedule_epochs"] == 200
    assert manifest["training"]["settings"]["seed"] == 2 and model.latent_dim == 500
    assert manifest["training"]["settings"]["crops"] == "fresh" and len(manifest["training"]["val_loss"]) == 1

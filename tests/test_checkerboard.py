"""The Fig. 3 experiment (ssimlib.experiments.checkerboard): boards measured from their pixels, SSIM terms against
hand formulas."""

import ast

import nbformat
import numpy as np
import pytest
import scipy.ndimage
import skimage.filters

from ssimlib.apps.notebooks import NOTEBOOK_DIR
from ssimlib.experiments import checkerboard, studies
from ssimlib.experiments.checkerboard import (
    CHECKERBOARD_SCHEDULE,
    edge_map,
    flat_windows,
    largest_ssim_term,
    region_means,
    residual_terms,
    top_k_shares,
    training_boards,
    validation_boards,
)
from ssimlib.synthetic import checkerboard as render_board

TINY = {"n_train": 32, "board_size": 32, "latent_dim": 8, "epochs": 2, "batch_size": 16, "n_validation": 4}
C1, C2 = 0.01**2, 0.03**2  # SSIM's constants for data range 1


def measured_angle(board):
    """Orientation of a board's edges in degrees, in [-45, 45): the 4-fold mean of its gradient directions."""
    b = board[..., 0].astype(float)
    gx, gy = skimage.filters.scharr_v(b), skimage.filters.scharr_h(b)
    return np.degrees(np.angle(np.sum((gx**2 + gy**2) * np.exp(4j * np.arctan2(gy, gx))))) / 4


def measured_square(board, angle):
    """Median run length in px between colour changes along lines in the board's direction ``angle``."""
    b = board[..., 0].astype(float)
    n, t = b.shape[0], np.deg2rad(angle)
    along, across = np.array([np.sin(t), np.cos(t)]), np.array([np.cos(t), -np.sin(t)])  # (row, col)
    steps, runs = np.arange(-n, n, 0.25), []
    for offset in np.arange(-n / 2, n / 2):
        points = (n - 1) / 2 + offset * across[:, None] + steps * along[:, None]
        points = points[:, ((points >= 0) & (points <= n - 1)).all(axis=0)]
        light = scipy.ndimage.map_coordinates(b, points, order=1) > 0.5
        runs += list(np.diff(np.flatnonzero(np.diff(light.astype(int)))) * 0.25)
    return float(np.median(runs))


def test_the_measures_of_a_board_read_back_what_was_drawn():
    for square, angle in [(8, 0.0), (12, 30.0), (16, -40.0), (24, 12.5)]:
        board = render_board(128, square, angle, phase=(0.3, 1.1))
        assert measured_angle(board) == pytest.approx(angle, abs=1.0)
        assert measured_square(board, measured_angle(board)) == pytest.approx(square, abs=0.5)
    axis_aligned = render_board(64, 8, 0.0)[..., 0]
    rows, cols = np.indices((64, 64))
    np.testing.assert_allclose(axis_aligned, np.where((rows // 8 + cols // 8) % 2, 0.9, 0.1), atol=1e-6)


def test_training_boards_are_deterministic_and_span_the_stated_ranges():
    boards = training_boards(40, 128, seed=0)
    np.testing.assert_array_equal(boards, training_boards(40, 128, seed=0))
    assert not np.array_equal(boards, training_boards(40, 128, seed=1))
    assert boards.shape == (40, 128, 128, 1) and boards.dtype == np.float32
    assert boards.min() == pytest.approx(0.1) and boards.max() == pytest.approx(0.9)
    sides = [measured_square(b, measured_angle(b)) for b in boards]
    allowed = 128 * np.array(CHECKERBOARD_SCHEDULE["squares"])
    np.testing.assert_array_equal(allowed, [8, 12, 16, 24])
    nearest = allowed[np.abs(np.subtract.outer(sides, allowed)).argmin(axis=1)]
    assert np.abs(np.array(sides) - nearest).max() <= 0.5
    assert set(nearest) == set(allowed)  # every square size occurs in 40 boards
    angles = np.array([measured_angle(b) for b in boards])
    assert angles.min() < -30 and angles.max() > 30  # ±45 covers every orientation
    narrow = [measured_angle(b) for b in training_boards(20, 128, max_angle=10.0, seed=0)]
    assert np.abs(narrow).max() <= 10.5


def test_defects_are_gray_and_their_masks_cover_exactly_the_changed_pixels():
    schedule = {**CHECKERBOARD_SCHEDULE, "board_size": 64}
    boards, masks, clean = checkerboard.test_boards(12, schedule, seed=3)
    again = checkerboard.test_boards(12, schedule, seed=3)
    for a, b in zip((boards, masks, clean), again):
        np.testing.assert_array_equal(a, b)
    changed = boards[..., 0] != clean[..., 0]
    assert not (changed & ~masks).any()
    assert (clean[..., 0][masks & ~changed] == 0.5).all()  # masked but unchanged: the board was 0.5 there already
    assert (boards[..., 0][masks] == 0.5).all()
    assert all(m.any() for m in masks) and 0.01 < masks.mean() < 0.2
    # The three sets come from separate random streams: no board of one is a board of another, even at one seed.
    validation_clean = validation_boards({**schedule, "validation_seed": 3, "n_validation": 12})[2]
    train = training_boards(12, 64, seed=3)
    for one, other in [(clean, validation_clean), (clean, train), (validation_clean, train)]:
        assert not any(np.array_equal(a, b) for a in one for b in other)


def test_a_reconstruction_that_removes_the_defects_leaves_residual_only_around_them():
    boards, masks, clean = checkerboard.test_boards(6, {**CHECKERBOARD_SCHEDULE, "board_size": 64}, seed=0)
    terms = residual_terms(boards, clean)
    means = region_means(terms, masks, edge_map(clean, masks))
    for key, region in means.items():
        assert region["defects"] > 5 * region["off defects"], key
    np.testing.assert_allclose(terms["L2 residual"][masks], (0.5 - clean[..., 0][masks].astype(np.float64)) ** 2)
    # Farther from every defect than the window's radius (5 px), input and reconstruction agree: no residual.
    far = ~scipy.ndimage.binary_dilation(masks, np.ones((1, 11, 11), bool))
    for key, m in terms.items():
        assert np.abs(m[far]).max() < 1e-9, key


def test_a_gray_stroke_on_a_flat_square_lands_in_contrast():
    """Stroke of 3 px at 0.5 across a flat 0.1 square, reconstruction flat 0.1: the paper's case of Fig. 3."""
    x = np.full((1, 40, 40, 1), 0.1)
    x[0, :, 19:22] = 0.5
    y = np.full_like(x, 0.1)
    mask = np.zeros((1, 40, 40), bool)
    mask[0, :, 19:22] = True
    terms = residual_terms(x, y)
    p, mu_x = 3 / 11, 0.1 + 0.4 * 3 / 11  # share of the 11x11 window on the stroke, window mean of x
    var_x = p * (1 - p) * 0.4**2
    centre = (0, 20, 20)
    assert terms["1 - l"][centre] == pytest.approx(1 - (2 * mu_x * 0.1 + C1) / (mu_x**2 + 0.01 + C1), abs=1e-9)
    assert terms["1 - c"][centre] == pytest.approx(1 - C2 / (var_x + C2), abs=1e-9)
    assert terms["1 - s"][centre] == pytest.approx(0.0, abs=1e-9)  # a flat patch has no structure to disagree with
    assert largest_ssim_term(region_means(terms, mask)) == "1 - c"


def test_a_uniform_brightness_shift_lands_in_luminance():
    board = render_board(64, 8, 20.0)[None].astype(np.float64)
    shifted = board + 0.05
    terms = residual_terms(board, shifted)
    mu = scipy.ndimage.uniform_filter(board[0, ..., 0], 11, mode="reflect")
    expected = 1 - (2 * mu * (mu + 0.05) + C1) / (mu**2 + (mu + 0.05) ** 2 + C1)
    np.testing.assert_allclose(terms["1 - l"][0], expected, atol=1e-9)
    assert np.abs(terms["1 - c"]).max() < 1e-9 and np.abs(terms["1 - s"]).max() < 1e-9
    mask = np.zeros((1, 64, 64), bool)
    mask[0, 20:30, 20:30] = True
    assert largest_ssim_term(region_means(terms, mask)) == "1 - l"


def test_top_k_shares_and_edges_by_hand():
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 0, :2] = True  # k = 2 defect pixels
    edges = np.zeros_like(masks)
    edges[0, 3, :] = True
    maps = {"half": np.zeros((1, 4, 4)), "defects": masks.astype(float)}
    maps["half"][0, 0, 0], maps["half"][0, 3, 3] = 2.0, 3.0
    assert top_k_shares(maps, masks, edges) == {"half": (0.5, 0.5), "defects": (1.0, 0.0)}
    # Edges of an axis-aligned board of 8 px squares: columns or rows within 2 px of a multiple of 8 inside the board.
    board = render_board(64, 8, 0.0)[None]
    near = np.zeros(64, bool)
    for boundary in range(8, 64, 8):
        near[boundary - 2 : boundary + 2] = True
    expected = near[:, None] | near[None, :]
    np.testing.assert_array_equal(edge_map(board, np.zeros((1, 64, 64), bool))[0], expected)


def test_flat_windows_against_a_loop_over_windows():
    board = render_board(48, 12, 20.0)[None]  # anti-aliased, turned: edges of intermediate gray
    expected = np.zeros((48, 48), bool)
    for r in range(48):
        for c in range(48):
            window = board[0, max(r - 2, 0) : r + 3, max(c - 2, 0) : c + 3, 0]
            expected[r, c] = np.ptp(window) < 1e-3
    assert 0.1 < expected.mean() < 0.9
    np.testing.assert_array_equal(flat_windows(board, window_size=5)[0], expected)


def test_training_exports_records_validation_and_continues(tmp_path):
    lines = []
    root = tmp_path / "models"
    first = checkerboard.train_checkerboard_model(
        "l2", TINY, root, tmp_path / "a", export_every=1, log=lines.append)
    training = first["training"]
    assert training["epochs_done"] == 2 and training["complete"] and first["study"] == "checkerboard"
    assert [e["epoch"] for e in training["validation"]] == [1, 2]
    assert all(0 < e["error_on_defects"] < 1 and 0 < e["error_off_defects"] < 1 for e in training["validation"])
    assert (training["settings"]["board_size"] == 32
            and training["settings"]["squares"] == [1 / 16, 3 / 32, 1 / 8, 3 / 16])
    assert sum("exported after epoch" in line for line in lines) == 2
    assert sum("validation, |reconstruction - clean board|" in line for line in lines) == 2
    models, manifests, missing = checkerboard.load_checkerboard_models(root)
    assert missing == ["ssim"] and models["l2"].latent_dim == 8 and models["l2"].patch_size == 32
    assert "L2-AE: 2 of 2 epochs" in checkerboard.schedule_label(manifests["l2"])
    # No checkpoint (a fresh clone): continue the stored model, Adam restarted, its validation history kept.
    longer = checkerboard.train_checkerboard_model("l2", {**TINY, "epochs": 3}, root, tmp_path / "b", log=lines.append)
    training = longer["training"]
    assert training["optimizer_restarts"] == [2] and training["loss"][:2] == first["training"]["loss"]
    assert training["validation"][:2] == first["training"]["validation"] and training["validation"][2]["epoch"] == 3
    # With its checkpoint, a run resumes exactly; a checkpoint made for other boards is refused.
    resumed = checkerboard.train_checkerboard_model("l2", {**TINY, "epochs": 4}, root, tmp_path / "b", log=lines.append)
    assert resumed["training"]["optimizer_restarts"] == [2] and len(resumed["training"]["validation"]) == 4
    with pytest.raises(ValueError, match=r"checkpoint in .*b was made with other settings.*max_angle"):
        checkerboard.train_checkerboard_model("l2", {**TINY, "epochs": 5, "max_angle": 10.0}, root, tmp_path / "b",
                                              log=lines.append)


def test_a_missing_model_is_named_with_the_command_that_trains_it(tmp_path):
    root = tmp_path / "models"
    with pytest.raises(FileNotFoundError, match=r"l2_ae\.json: no trained L2-AE.*ssim_ae\.json: no trained SSIM-AE.*"
                                                 r"train-study checkerboard --models L2-AE SSIM-AE"):
        checkerboard.load_or_train(root)
    models, _, trained = checkerboard.load_or_train(
        root, train_missing=True, schedule={**TINY, "epochs": 1}, checkpoint_root=tmp_path / "run", log=lambda _: None)
    assert trained == ["l2", "ssim"] and set(models) == {"l2", "ssim"}
    assert (tmp_path / "run" / "checkpoints" / "ssim_ae" / "state.json").exists()
    assert checkerboard.provenance(root, trained).endswith("L2-AE and SSIM-AE trained by this run")
    assert checkerboard.load_or_train(root)[2] == []
    assert checkerboard.provenance(None, []) == "models/checkerboard (committed models)"
    # asked to train at another schedule, the stored models were evaluated in its place without a word
    assert checkerboard.load_or_train(root, train_missing=True, schedule={**TINY, "epochs": 1})[2] == []
    with pytest.raises(ValueError, match=r"l2_ae\.json: the stored L2-AE was trained with other settings \(stored, "
                                         r"asked\): latent_dim 8, 4, epochs 1, 2; give models_root a folder"):
        checkerboard.load_or_train(root, train_missing=True, schedule={**TINY, "epochs": 2, "latent_dim": 4})


def test_train_study_checkerboard_is_wired(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(checkerboard, "train_checkerboard_model",
                        lambda loss, schedule, root, export_every, log: calls.append((loss, schedule, root)) or {})
    monkeypatch.setattr(checkerboard, "schedule_label", lambda manifest: "label")
    assert studies.main(["checkerboard", "--models", "SSIM-AE", "--epochs", "3", "--models-root", "store"]) == 0
    assert calls == [("ssim", {"epochs": 3}, "store")]
    calls.clear()
    studies.main(["checkerboard"])
    assert [c[0] for c in calls] == ["l2", "ssim"] and calls[0][1] is None
    assert studies.main(["checkerboard", "--models", "VAE"]) == 2
    assert capsys.readouterr().err == "error: --models: checkerboard trains L2-AE and SSIM-AE, not VAE\n"


def test_the_notebook_defaults_are_the_schedule():
    notebook = nbformat.read(NOTEBOOK_DIR / "01_checkerboard_toy.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    parameters = {node.targets[0].id: ast.literal_eval(node.value) for node in ast.parse(cell.source).body}
    for key in ("n_train", "board_size", "latent_dim", "epochs", "batch_size", "learning_rate", "seed"):
        assert parameters[key] == CHECKERBOARD_SCHEDULE[key], key
    assert parameters["models_root"] is None and parameters["train_missing"] is False


def test_reconstruct_feeds_batches_of_one_shape_and_keeps_the_order():
    shapes = []

    class Doubler:
        def predict_on_batch(self, batch):
            shapes.append(batch.shape)
            return 2 * batch

    boards = np.random.default_rng(0).random((5, 8, 8, 1)).astype(np.float32)
    np.testing.assert_array_equal(checkerboard.reconstruct(Doubler(), boards, batch_size=4), 2 * boards)
    assert shapes == [(4, 8, 8, 1), (4, 8, 8, 1)]

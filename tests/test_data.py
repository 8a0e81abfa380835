"""Loaders on the real shared data (skipped when absent) and on generated folders with bad input."""

import numpy as np
import pytest
import skimage.io
from PIL import Image

from ssimlib.data import (
    DatasetError,
    load_folder,
    load_mvtec_category,
    load_nanotwice,
    read_image,
    sample_patches,
)
from ssimlib.synthetic import checkerboard, checkerboard_dataset, draw_defects, write_synthetic_category


def test_nanotwice(nanotwice_root):
    data = load_nanotwice(nanotwice_root)
    assert len(data.train_images) == 5 and len(data.test_images) == 40
    assert data.train_images[0].shape == (700, 1024, 1) and data.train_images[0].dtype == np.float32
    assert data.test_images[0].shape == (696, 1024, 1)
    assert all(m.dtype == bool and m.shape == i.shape[:2] for m, i in zip(data.test_masks, data.test_images))
    assert all(0 < m.mean() < 0.5 for m in data.test_masks)
    assert 0.0 <= min(i.min() for i in data.train_images) and max(i.max() for i in data.train_images) <= 1.0
    assert data.test_labels.tolist() == [1] * 40


def test_mvtec_grid_without_test_good(mvtec_root):
    with pytest.warns(UserWarning, match="test/good is missing"):
        data = load_mvtec_category(mvtec_root, "grid")
    assert len(data.train_images) == 264 and len(data.test_images) == 57
    assert sorted(set(data.test_defect_types)) == ["bent", "broken", "glue", "metal_contamination", "thread"]
    assert data.channels == 1 and data.test_images[0].shape == (256, 256, 1)
    assert data.test_labels.min() == 1 and any("image-level" in n for n in data.notes)
    assert all(m.any() for m in data.test_masks)


def test_synthetic_category_round_trip(tmp_path):
    folder = write_synthetic_category(tmp_path, "boards", n_train=3, n_good=2, n_defective=2, size=64)
    data = load_folder(folder)
    assert data.name == "boards" and len(data.train_images) == 3
    assert data.test_labels.tolist() == [0, 0, 1, 1]
    assert not data.test_masks[0].any() and data.test_masks[2].any()
    resized = load_mvtec_category(tmp_path, "boards", size=32, gray=False)
    assert resized.train_images[0].shape == (32, 32, 3) and resized.test_masks[3].shape == (32, 32)


def test_read_image_scales_by_dtype(tmp_path):
    path = tmp_path / "a.tif"
    skimage.io.imsave(path, np.full((8, 8), 65535, np.uint16), check_contrast=False)
    assert read_image(path).max() == pytest.approx(1.0)
    rgb = tmp_path / "c.png"
    skimage.io.imsave(rgb, np.full((8, 8, 3), [255, 0, 0], np.uint8), check_contrast=False)
    assert read_image(rgb).shape == (8, 8, 3)
    assert read_image(rgb, gray=True)[0, 0, 0] == pytest.approx(0.2125, abs=1e-3)  # skimage's luma for red
    for mode, pixel, expected in (("LA", [51, 7], [0.2]), ("RGBA", [255, 0, 51, 7], [1.0, 0.0, 0.2])):  # alpha dropped
        path = tmp_path / f"{mode}.png"
        Image.fromarray(np.full((8, 8, len(pixel)), pixel, np.uint8), mode=mode).save(path)
        np.testing.assert_allclose(read_image(path)[3, 3], expected, atol=1e-6)


@pytest.fixture
def category(tmp_path):
    return write_synthetic_category(tmp_path, "cat", n_train=2, n_good=1, n_defective=1, size=64)


def test_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match="nowhere.*does not exist"):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(DatasetError, match="a_file: expected a folder with .*, but it is a file$"):
        load_folder(tmp_path / "a_file")
    with pytest.raises(DatasetError, match="Normal"):
        load_nanotwice(tmp_path)


def test_empty_train_set(category):
    for f in (category / "train" / "good").iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match="train/good.*found none"):
        load_folder(category)


def test_unreadable_image(category):
    bad = category / "test" / "good" / "000.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match="000.png.*could not read"):
        load_folder(category)


def test_truncated_image(category):
    path = category / "train" / "good" / "000.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DatasetError, match="000.png"):
        load_folder(category)


def test_mask_size_mismatch(category):
    mask = category / "ground_truth" / "stroke" / "000_mask.png"
    skimage.io.imsave(mask, np.zeros((32, 32), np.uint8), check_contrast=False)
    with pytest.raises(DatasetError, match="000_mask.png: mask is 32x32 but its image is 64x64"):
        load_folder(category)


def test_missing_mask(category):
    (category / "ground_truth" / "stroke" / "000_mask.png").unlink()
    with pytest.raises(DatasetError, match="000_mask.png.*does not exist"):
        load_folder(category)


def test_image_smaller_than_patch(category):
    data = load_folder(category)
    with pytest.raises(DatasetError, match="000.png: image is 64x64, smaller than the 128x128 patch"):
        sample_patches(data.train_images, 4, 128, paths=data.train_paths)


def test_sample_patches_deterministic_and_augmented():
    images = [np.random.default_rng(i).random((100, 120, 1), dtype=np.float32) for i in range(3)]
    a = sample_patches(images, 10, 32, seed=1)
    b = sample_patches(images, 10, 32, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (10, 32, 32, 1) and a.dtype == np.float32
    # every plain patch is a crop of its image
    crop = a[0, ..., 0]
    windows = np.lib.stride_tricks.sliding_window_view(images[0][..., 0], (32, 32))
    assert (np.abs(windows - crop).max(axis=(2, 3)) == 0).any()
    rotated = sample_patches(images, 10, 32, seed=1, rotate=True, flip=True)
    assert rotated.shape == a.shape and not np.allclose(rotated, a)


def test_checkerboards_and_defects():
    board = checkerboard(64, square=8, angle=0)[..., 0]
    assert board[0, 0] == pytest.approx(0.1) and board[0, 8] == pytest.approx(0.9)
    rng = np.random.default_rng(0)
    image, mask = draw_defects(board[..., None], rng)
    changed = image[..., 0] != board
    assert mask.any() and not (changed & ~mask).any()  # only masked pixels change
    train, test, masks, clean = checkerboard_dataset(4, 3, size=64, seed=0)
    assert train.shape == (4, 64, 64, 1) and test.shape == clean.shape == (3, 64, 64, 1) and masks.shape == (3, 64, 64)
    np.testing.assert_array_equal(test[~masks], clean[~masks])

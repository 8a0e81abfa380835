"""Generated data: checkerboards with simulated defects (paper Fig. 3) and a tiny MVTec-style category.

All images are float32 ``(H, W, 1)`` in ``[0, 1]``; masks are bool ``(H, W)``.
"""

from pathlib import Path

import numpy as np
import skimage.draw
import skimage.io
import skimage.morphology

SUPERSAMPLING = 4  # render edges at 4x and average: anti-aliased squares


def checkerboard(size=128, square=16, angle=0.0, phase=(0.0, 0.0), low=0.1, high=0.9):
    """A checkerboard of ``square``-pixel squares turned by ``angle`` degrees, ``(size, size, 1)``."""
    n = size * SUPERSAMPLING
    coords = (np.arange(n) + 0.5) / SUPERSAMPLING
    y, x = np.meshgrid(coords, coords, indexing="ij")
    t = np.deg2rad(angle)
    u = (x * np.cos(t) + y * np.sin(t)) / square + phase[0]
    v = (-x * np.sin(t) + y * np.cos(t)) / square + phase[1]
    board = (np.floor(u) + np.floor(v)) % 2
    board = board.reshape(size, SUPERSAMPLING, size, SUPERSAMPLING).mean(axis=(1, 3))
    return (low + (high - low) * board).astype(np.float32)[..., None]


def random_checkerboard(rng, size=128, squares=(1 / 16, 3 / 32, 1 / 8, 3 / 16), max_angle=45.0):
    """A checkerboard of random orientation, phase and square size (a fraction of ``size`` from ``squares``)."""
    return checkerboard(
        size,
        square=size * rng.choice(squares),
        angle=rng.uniform(-max_angle, max_angle),
        phase=tuple(rng.uniform(0, 2, 2)),
    )


def draw_defects(image, rng, n_strokes=2, n_dots=2, gray=0.5):
    """Draw gray strokes (3 or 5 px wide) and dots (radius 2.5-5 px) onto a copy of ``image``.

    Returns ``(defective_image, mask)`` where ``mask`` marks exactly the changed
    pixels' footprint.
    """
    h, w = image.shape[:2]
    mask = np.zeros((h, w), bool)
    for _ in range(n_strokes):
        r0, c0 = rng.integers(h // 16, h - h // 16), rng.integers(w // 16, w - w // 16)
        length, direction = rng.uniform(0.12, 0.3) * min(h, w), rng.uniform(0, np.pi)
        r1 = int(np.clip(r0 + length * np.sin(direction), 0, h - 1))
        c1 = int(np.clip(c0 + length * np.cos(direction), 0, w - 1))
        line = np.zeros((h, w), bool)
        line[skimage.draw.line(r0, c0, r1, c1)] = True
        mask |= skimage.morphology.dilation(line, skimage.morphology.disk(rng.integers(1, 2, endpoint=True)))
    for _ in range(n_dots):
        center = (rng.integers(h // 16, h - h // 16), rng.integers(w // 16, w - w // 16))
        mask[skimage.draw.disk(center, rng.uniform(2.5, 5), shape=(h, w))] = True
    defective = image.copy()
    defective[mask] = gray
    return defective, mask


def checkerboard_dataset(n_train, n_test, size=128, seed=0):
    """Defect-free training boards, and defective test boards with their masks and defect-free originals.

    Returns ``train (n_train, size, size, 1)``, ``test (n_test, size, size, 1)``,
    ``masks (n_test, size, size)`` and ``clean (n_test, size, size, 1)``.
    """
    rng = np.random.default_rng(seed)
    train = np.stack([random_checkerboard(rng, size) for _ in range(n_train)])
    clean = [random_checkerboard(rng, size) for _ in range(n_test)]
    pairs = [draw_defects(board, rng) for board in clean]
    test = np.array([p[0] for p in pairs], np.float32).reshape(n_test, size, size, 1)
    masks = np.array([p[1] for p in pairs], bool).reshape(n_test, size, size)
    return train, test, masks, np.array(clean, np.float32).reshape(n_test, size, size, 1)


def write_synthetic_category(root, name="synthetic", n_train=8, n_good=2, n_defective=4, size=128, seed=0):
    """Write a tiny category in the MVTec AD layout under ``root/name`` and return its path.

    ``train/good`` and ``test/good`` hold plain checkerboards (one orientation, as
    a texture category would), ``test/stroke`` holds boards with drawn defects and
    ``ground_truth/stroke/<stem>_mask.png`` their masks, as 8-bit PNGs.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / name

    def board():
        return checkerboard(size, square=16, angle=10.0, phase=tuple(rng.uniform(0, 2, 2)))

    def save(path, array):
        path.parent.mkdir(parents=True, exist_ok=True)
        skimage.io.imsave(path, (np.squeeze(array) * 255).round().astype(np.uint8), check_contrast=False)

    for i in range(n_train):
        save(folder / "train" / "good" / f"{i:03d}.png", board())
    for i in range(n_good):
        save(folder / "test" / "good" / f"{i:03d}.png", board())
    for i in range(n_defective):
        image, mask = draw_defects(board(), rng)
        save(folder / "test" / "stroke" / f"{i:03d}.png", image)
        save(folder / "ground_truth" / "stroke" / f"{i:03d}_mask.png", mask.astype(np.float32))
    return folder

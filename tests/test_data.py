"""Loaders on the real shared data (skipped when absent) and on generated folders with bad input."""

import re
import warnings

import numpy as np
import pytest
import skimage.draw
import skimage.io
from PIL import Image
from scipy import ndimage

from ssimlib.data import DatasetError, read_image, read_mask, sample_patches
from ssimlib.datasets import load_folder, load_mvtec_category, load_nanotwice
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


def test_read_image_refuses_values_it_cannot_scale(tmp_path):
    # a 0-255 float TIFF was clipped to a white image, signed int16 read into [-1, 1]; NaN passed on
    pixels = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    cases = {"float255.tif": (pixels * 255, r"float pixel values from 0 to 255; expected values in \[0, 1\]"),
             "nan.tif": (np.where(pixels > 0.9, np.nan, pixels), "7 pixels are NaN or infinite"),
             "int16.tif": ((pixels * 200 - 100).astype(np.int16), "signed int16 pixels with negative values")}
    for name, (array, message) in cases.items():
        skimage.io.imsave(tmp_path / name, array, check_contrast=False)
        with pytest.raises(DatasetError, match=f"{name}: {message}"):
            read_image(tmp_path / name)
    skimage.io.imsave(tmp_path / "ok.tif", pixels * 1.0004, check_contrast=False)  # rounding past 1: clipped
    assert read_image(tmp_path / "ok.tif").max() == 1.0
    skimage.io.imsave(tmp_path / "pos16.tif", np.full((8, 8), 32767, np.int16), check_contrast=False)
    assert read_image(tmp_path / "pos16.tif").max() == pytest.approx(1.0)


def test_jpeg_is_read_as_viewers_show_it(tmp_path):
    # an RGB picture whose rows differ from its columns, saved as CMYK and as a JPEG stored turned (EXIF orientation 6)
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[:8, :, 0] = 200  # top half red
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    np.testing.assert_allclose(read_image(tmp_path / "cmyk.jpg")[2, 2], [200 / 255, 0, 0], atol=0.03)
    stored = Image.fromarray(np.rot90(rgb, 1))  # the camera's sensor order: 24 rows of 16, red on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: turn 90 degrees clockwise to show it, which gives back rgb
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    shown = read_image(tmp_path / "phone.jpg")
    assert shown.shape == rgb.shape
    np.testing.assert_allclose(shown[[2, 13], :, 0], rgb[[2, 13], :, 0] / 255, atol=0.05)  # away from the edge


def test_a_tiff_stack_is_read_as_its_first_page_with_a_warning(tmp_path):
    import tifffile

    pages = np.arange(3 * 6 * 8, dtype=np.uint8).reshape(3, 6, 8)
    tifffile.imwrite(tmp_path / "stack.tif", pages, photometric="minisblack")  # three gray frames
    with pytest.warns(UserWarning, match=r"stack.tif: a TIFF of 3 pages \(frames\); only the first is read"):
        image = read_image(tmp_path / "stack.tif")
    np.testing.assert_array_equal(image[..., 0],
                                  pages[0] / np.float32(255))  # it was read as one RGB image of the three
    rgb = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(tmp_path / "planar.tif"), rgb / np.float32(255))


def test_a_palette_of_grays_is_read_as_gray(tmp_path):
    import tifffile

    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(gray).convert("P").save(tmp_path / "gray_palette.png")
    ramp = np.arange(256, dtype=np.uint16) * 257
    tifffile.imwrite(tmp_path / "gray_palette.tif", gray, photometric="palette", colormap=np.stack([ramp] * 3))
    for name in ("gray_palette.png", "gray_palette.tif"):
        np.testing.assert_array_equal(read_image(tmp_path / name), gray[..., None] / np.float32(255), err_msg=name)
    colours = np.zeros((6, 8, 3), np.uint8)
    colours[:3, :, 0] = 255
    Image.fromarray(colours).convert("P", palette=Image.ADAPTIVE).save(tmp_path / "colour_palette.png")
    assert read_image(tmp_path / "colour_palette.png").shape == (6, 8, 3)


@pytest.mark.parametrize("top", [183, 4095, 11712])  # 8-, 12- and 14-bit data stored in 16 bits
def test_dim_sixteen_bit_pixels_are_warned_of(tmp_path, top):
    values = np.full((6, 8), top, np.uint16)
    skimage.io.imsave(tmp_path / "camera.tif", values, check_contrast=False)
    with pytest.warns(UserWarning, match=f"camera.tif: 16-bit pixels reach only {top} of 65535"):
        assert read_image(tmp_path / "camera.tif").max() == pytest.approx(top / 65535)


def test_a_sixteen_bit_mask_of_zeros_and_ones_is_no_dim_image(tmp_path, recwarn):
    from ssimlib.data import read_mask

    mask = np.zeros((6, 8), np.uint16)
    mask[2:4, 3:5] = 1
    skimage.io.imsave(tmp_path / "mask.png", mask, check_contrast=False)
    np.testing.assert_array_equal(read_mask(tmp_path / "mask.png", (6, 8)), mask == 1)
    assert not [w for w in recwarn if "reach only" in str(w.message)]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_and_tiff_are_turned_as_their_orientation_says(tmp_path, orientation):
    import tifffile
    from PIL import ImageOps

    stored = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8) * 5
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "turned.png", exif=exif)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "turned.png")))  # what a viewer shows
    tifffile.imwrite(tmp_path / "turned.tif", stored, extratags=[(274, "H", 1, orientation, True)])
    for name in ("turned.png", "turned.tif"):
        np.testing.assert_array_equal(read_image(tmp_path / name)[..., 0], shown / np.float32(255), err_msg=name)


def test_hidden_files_are_not_images(tmp_path):
    from ssimlib.data import is_image_file

    for name in ("a.png", "._a.png", ".partial-a_map.png", "b.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in sorted(tmp_path.iterdir()) if is_image_file(p)] == ["a.png"]


def test_files_that_look_like_images_but_are_not_read_are_named(tmp_path):
    from ssimlib.data import image_files

    image = np.full((8, 8), 128, np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray(image).save(tmp_path / "b.jpe", format="JPEG")  # a JPEG by another name: read
    Image.fromarray(image).save(tmp_path / "c.gif")
    Image.fromarray(image).save(tmp_path / "d.webp")
    (tmp_path / "e.png").symlink_to(tmp_path / "gone.png")
    (tmp_path / "f.png").symlink_to(tmp_path / "g.png")  # a loop: f -> g -> f (was told "link(s) to nothing")
    (tmp_path / "g.png").symlink_to(tmp_path / "f.png")
    (tmp_path / "notes.txt").write_text("not an image, not named")
    (tmp_path / "dent").symlink_to(tmp_path / "unmounted")  # a second tester's: a defect type's folder, unmounted
    with pytest.warns(UserWarning) as warned:
        assert [p.name for p in image_files(tmp_path)] == ["a.png", "b.jpe"]
    assert [str(w.message) for w in warned] == [
        f"{tmp_path}: skipped 2 image(s) of a format not read, convert them to PNG or TIFF (c.gif, d.webp); "
        "3 link(s) that reach no file (a target gone, or a loop) (e.png, f.png, g.png); 1 link(s) that reach no "
        "folder or file (a drive not mounted, a target gone, or a loop): not searched (dent)"]
    assert read_image(tmp_path / "b.jpe").shape == (8, 8, 1)


def test_a_mask_of_zeros_and_ones_saved_as_jpeg_is_refused(tmp_path):
    from ssimlib.data import DatasetError, read_mask

    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:24] = 1  # 0/1, as many labelling tools write it, then saved lossily
    Image.fromarray(mask).save(tmp_path / "m.jpg", quality=95)
    with pytest.raises(DatasetError, match=r"m\.jpg: a JPEG mask that marks nothing, though \d+ of its pixels are "
                                           r"faintly above 0 \(up to \d+/255\): a 0/1 mask saved as JPEG\?"):
        read_mask(tmp_path / "m.jpg")  # read as marking nothing, its image would count defect-free
    Image.fromarray(mask * 255).save(tmp_path / "ok.jpg", quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_mask(tmp_path / "ok.jpg").sum() == 128


def test_a_copy_of_the_image_or_an_overlay_given_as_a_mask_is_warned_of(tmp_path):
    # a tester's: --masks pointed at the images, or overlays (the gray image, its defect painted red) saved as
    # <stem>_mask.png, were read as masks above half, a third of each image "defect", without a word. A warning,
    # not a refusal: a mask feathered widely looks alike (a second tester's), and is right to read above half.
    rng = np.random.default_rng(0)
    photo = (rng.uniform(0.2, 0.8, (32, 32)) * 255).astype(np.uint8)  # many gray levels, few near the extremes
    Image.fromarray(photo).save(tmp_path / "copy.png")
    overlay = np.repeat(photo[..., None], 3, axis=-1)
    overlay[8:16, 8:16] = (255, 0, 0)
    Image.fromarray(overlay).save(tmp_path / "overlay.png")
    for name in ("copy.png", "overlay.png"):
        with pytest.warns(UserWarning, match=rf"{name}: does not look like a mask \(\d+ gray values; only \d+% of its "
                                             r"pixels near its darkest or brightest, \d+% in between\): a copy of its "
                                             "image, or an overlay"):
            read_mask(tmp_path / name)
    soft = np.zeros((32, 32))
    soft[8:24, 8:24] = 1
    soft = (ndimage.gaussian_filter(soft, 1.0) * 255).astype(np.uint8)  # soft edges: many gray values, mostly 0
    Image.fromarray(soft).save(tmp_path / "soft.png")
    assert np.unique(soft).size > 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_mask(tmp_path / "soft.png").sum() == np.count_nonzero(soft >= 128)


def test_an_overlay_on_a_photograph_of_high_contrast_is_warned_of_as_perhaps_no_mask(tmp_path):
    # a second tester's: most of its pixels lie near black or white, as a mask's do, so only "is it inverted?" was
    # said of the half it read as defect
    from ssimlib.data import read_mask

    rng = np.random.default_rng(1)
    photo = np.where(rng.random((32, 32)) < 0.6, rng.uniform(0.9, 1, (32, 32)), rng.uniform(0, 0.1, (32, 32)))
    overlay = np.repeat((photo * 255).astype(np.uint8)[..., None], 3, axis=-1)
    overlay[8:16, 8:16] = (255, 0, 0)
    Image.fromarray(overlay).save(tmp_path / "overlay.png")
    with pytest.warns(UserWarning, match=r"overlay\.png: marks \d+% of its pixels as defect; .* is it inverted, or no "
                                         r"mask at all \(\d+ gray values: a copy of its image, an overlay\?\)\?"):
        assert read_mask(tmp_path / "overlay.png").mean() > 0.5
    inverted = np.full((32, 32), 255, np.uint8)
    inverted[8:16, 8:16] = 0  # a label image, inverted: no word of overlays
    Image.fromarray(inverted).save(tmp_path / "inverted.png")
    with pytest.warns(UserWarning, match=r"inverted\.png: marks 94% of its pixels as defect; .* is it inverted\?$"):
        read_mask(tmp_path / "inverted.png")


def test_a_mask_of_soft_edges_too_dark_to_mark_anything_is_refused(tmp_path):
    # a tester's: soft edges up to 100/255, or 8-bit values in a 16-bit PNG, read as marking nothing (defect-free)
    from ssimlib.data import DatasetError, read_mask

    yy, xx = np.mgrid[:32, :32]
    soft = np.clip(1 - np.hypot(yy - 16, xx - 16) / 10, 0, 1)  # a disc fading out: many gray values
    Image.fromarray((soft * 100).round().astype(np.uint8)).save(tmp_path / "dark.png")
    Image.fromarray((soft * 255).round().astype(np.uint16)).save(tmp_path / "sixteen.png")
    for name, top in (("dark.png", "39.2%"), ("sixteen.png", "0.4%")):
        with pytest.raises(DatasetError, match=rf"{name}: a mask of \d+ gray values that marks nothing: its brightest "
                                               rf"pixels reach {re.escape(top)} of its type's maximum"):
            read_mask(tmp_path / name)
    Image.fromarray((soft * 255).round().astype(np.uint8)).save(tmp_path / "bright.png")
    assert read_mask(tmp_path / "bright.png").sum() == np.count_nonzero(np.round(soft * 255) >= 128)  # above 127.5


def test_a_mask_painted_red_with_soft_edges_marks_where_its_red_is_above_half(tmp_path):
    # a tester's: its luminance (0.21 of red's) never reached half, and it was refused as "8-bit values in 16 bits?"
    from ssimlib.data import read_mask

    yy, xx = np.mgrid[:32, :32]
    soft = np.round(np.clip(1 - np.hypot(yy - 16, xx - 16) / 10, 0, 1) * 255).astype(np.uint8)
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = soft
    Image.fromarray(red).save(tmp_path / "red.png")
    assert read_mask(tmp_path / "red.png").sum() == np.count_nonzero(soft >= 128)


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
    with pytest.raises(DatasetError, match=r"000_mask.png.*does not exist \(add it, or move the image out of "
                                           r"stroke/\)"):
        load_folder(category)


def test_a_missing_ground_truth_folder_is_named_and_an_empty_defect_type_noted(category):
    # a tester's: without ground_truth/ the error named one mask file; an empty test/<type> was dropped silently
    import shutil

    n_stroke = len(list((category / "test" / "stroke").iterdir()))
    shutil.rmtree(category / "ground_truth")
    with pytest.raises(DatasetError, match=re.escape(
            f"{category / 'ground_truth' / 'stroke'}: expected a folder with the ground-truth masks (<stem>_mask.png) "
            f"of the {n_stroke} images of {category / 'test' / 'stroke'}, but it does not exist (nor does "
            f"{category / 'ground_truth'})")):
        load_folder(category)
    (category / "ground_truth" / "stroke").mkdir(parents=True)
    for image in (category / "test" / "stroke").iterdir():
        image.rename(category / "ground_truth" / "stroke" / f"{image.stem}_mask.png")  # masks kept, images gone
    with pytest.warns(UserWarning, match="stroke holds no images: defect type stroke left out"):
        data = load_folder(category)
    assert set(data.test_defect_types) == {"good"} and data.notes[-1] == (
        f"{category / 'test' / 'stroke'} holds no images: defect type stroke left out "
        f"({category / 'ground_truth' / 'stroke'} holds {n_stroke} masks)")


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


def test_an_image_stretched_to_a_square_is_warned_of(tmp_path):
    # a tester's: a 256x200 image under an MVTec AD model (resize 256) scored 1.38 with 29,607 px flagged against
    # 0.83 and 1,427 px uncropped, with no word that it had been stretched
    Image.fromarray(np.zeros((200, 256), np.uint8)).save(tmp_path / "wide.png")
    Image.fromarray(np.zeros((200, 200), np.uint8)).save(tmp_path / "square.png")
    with pytest.warns(UserWarning, match=r"wide\.png: 256x200 px, not square, stretched to 128x128; crop it square"):
        assert read_image(tmp_path / "wide.png", size=128).shape == (128, 128, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "square.png", size=128).shape == (128, 128, 1)
        assert read_image(tmp_path / "wide.png").shape == (200, 256, 1)  # not resized: nothing to say


def _png16(path, pixels, colour_type):
    """A 16-bit PNG written byte by byte (PNG spec: IHDR, one IDAT of unfiltered rows, IEND), not by Pillow."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    height, width = pixels.shape[:2]
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("colour_type, channels, name", [(2, 3, "RGB"), (4, 2, "gray + alpha"), (6, 4, "RGBA")])
def test_a_sixteen_bit_colour_png_is_refused_not_cut_to_eight_bits(tmp_path, colour_type, channels, name):
    # a tester's: 12-bit data in a 16-bit RGB PNG read as 8 bits (16 gray levels), silently and without the dim warning
    pixels = np.random.default_rng(0).integers(0, 4096, (4, 5, channels))
    _png16(tmp_path / "c.png", pixels, colour_type)
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(tmp_path / 'c.png'))}: a 16-bit {re.escape(name)} PNG, "
                                           r"which this reader \(Pillow\) would cut to 8 bits per channel"):
        read_image(tmp_path / "c.png")
    gray = np.random.default_rng(0).integers(0, 65536, (4, 5))
    _png16(tmp_path / "g.png", gray, 0)  # 16-bit gray: read whole
    np.testing.assert_allclose(read_image(tmp_path / "g.png")[..., 0], gray / 65535, rtol=1e-6)


def test_a_file_of_no_image_type_is_named_as_such(tmp_path):
    # a tester's: "unpack_from requires a buffer of at least 4 bytes" for notes.txt, "not a MD image" for readme.md
    for name in ("notes.txt", "readme.md"):
        (tmp_path / name).write_text("hi")
        suffix = name.rsplit(".", 1)[1]
        with pytest.raises(DatasetError, match=rf"^{re.escape(str(tmp_path / name))}: could not read it as an image "
                                               rf"\(\.{suffix} is not an image file type\)$"):
            read_image(tmp_path / name)


def test_a_label_image_of_many_classes_marks_every_class_and_soft_edges_still_count_from_half(tmp_path):
    # a tester's: nine classes 20, 40, ... 180 on 0 were read as soft edges: six of the nine defects lost, no word;
    # a second tester's: thin scratches numbered 20..240 lost those under half, and a wide feather on a large mask was
    # taken for a label image (11 times its pixels above half)
    from ssimlib.data import DatasetError, read_mask

    classes = np.zeros((128, 128), np.uint8)
    for i, value in enumerate(range(20, 200, 20)):
        classes[8 + 12 * i: 16 + 12 * i, 8 + 12 * i: 16 + 12 * i] = value
    instances = np.zeros((128, 128), np.uint8)  # instance ids 1..12: all far below half
    for i in range(12):
        instances[10 * i: 10 * i + 6, 20:30] = i + 1
    scratches = np.zeros((96, 96), np.uint8)  # 2 px wide, numbered 20..240: no pixel amid its own value
    for i in range(12):
        scratches[4 + 7 * i: 6 + 7 * i, 10:80] = 20 * (i + 1)
    for name, labels in (("classes.png", classes), ("instances.png", instances), ("scratches.png", scratches),
                         ("thin_ids.png", (scratches // 20).astype(np.uint8))):
        skimage.io.imsave(tmp_path / name, labels, check_contrast=False)
        with pytest.warns(UserWarning, match="read as a label image"):
            np.testing.assert_array_equal(read_mask(tmp_path / name), labels > 0, err_msg=name)
    # soft edges: a disk drawn at 8x and averaged down (anti-aliased), one blurred, and a wide feather on a large
    # mask (its faint tail flat in 8 bits); each counts from half, without a warning
    yy, xx = np.mgrid[:512, :512]
    disk = ((yy - 256) ** 2 + (xx - 200) ** 2 < 120 ** 2).astype(float)
    antialiased = disk.reshape(64, 8, 64, 8).mean(axis=(1, 3))
    yy, xx = np.mgrid[:1024, :1024]
    feather = ndimage.gaussian_filter(((yy - 512) ** 2 + (xx - 512) ** 2 < 100 ** 2).astype(float), 60)
    # a fourth tester's, against a rule for classes side by side (reverted): flat regions of many values with sharp
    # steps between them that are soft masks all the same: a probability map upscaled 4x by nearest neighbour, one
    # saved at steps of 0.1, and the agreement map of 10 annotators (their majority)
    rng = np.random.default_rng(3)
    coarse = ndimage.gaussian_filter(rng.random((128, 128)), 4)
    coarse = np.clip(((coarse - coarse.min()) / np.ptp(coarse) - 0.55) * 3, 0, 1)
    smooth = ndimage.gaussian_filter(rng.random((512, 512)), 12)
    smooth = np.clip((smooth - smooth.mean()) / smooth.std() / 3 + 0.2, 0, 1)
    votes = np.zeros((512, 512))
    for _ in range(10):
        for cy, cx, r in ((150, 150, 60), (350, 330, 40), (300, 120, 25)):
            shift, scale = rng.normal(0, 5, 2), rng.uniform(0.8, 1.25, 2)
            votes[skimage.draw.ellipse(cy + shift[0], cx + shift[1], r * scale[0], r * scale[1], (512, 512),
                                       rotation=rng.uniform(0, 3))] += 1
    for name, soft in (("antialiased.png", antialiased), ("blurred.png", ndimage.gaussian_filter(antialiased, 3)),
                       ("feather.png", feather / feather.max()), ("nearest.png", np.kron(coarse, np.ones((4, 4)))),
                       ("votes.png", votes / 10)):
        pixels = np.round(soft * 255).astype(np.uint8)
        assert np.unique(pixels).size > 8
        skimage.io.imsave(tmp_path / name, pixels, check_contrast=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(read_mask(tmp_path / name), pixels > 127.5, err_msg=name)
    # a third tester's: a soft mask beside a faint blob, and a hard one with salt noise under half, count from half
    faint = np.zeros((256, 256))
    faint[40:90, 40:90], faint[180:186, 180:186] = 1, 0.4
    faint = ndimage.gaussian_filter(faint, 3)
    salted = np.zeros((128, 128), np.uint8)
    salted[40:80, 40:80] = 255
    noise = np.random.default_rng(0).random(salted.shape) < 0.02
    salted[noise & (salted == 0)] = np.random.default_rng(1).integers(1, 40, np.count_nonzero(noise & (salted == 0)))
    for name, pixels in (("faint.png", np.round(faint / faint.max() * 255).astype(np.uint8)), ("salted.png", salted),
                         ("tenths.png", np.round(np.round(smooth, 1) * 255).astype(np.uint8))):
        skimage.io.imsave(tmp_path / name, pixels, check_contrast=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # of soft edges, or of no mask (tenths: 65 % of it in between)
            np.testing.assert_array_equal(read_mask(tmp_path / name), pixels > 127.5, err_msg=name)
    # one class of value 100 with soft edges: under half everywhere, refused as before (not read as a label image)
    skimage.io.imsave(tmp_path / "dim.png", np.round(antialiased * 100).astype(np.uint8), check_contrast=False)
    with pytest.raises(DatasetError, match="marks nothing"):
        read_mask(tmp_path / "dim.png")


def test_an_image_turned_by_its_orientation_tag_and_its_mask_not_is_named(tmp_path):
    # a tester's: a JPEG turned by its EXIF tag beside a PNG mask drawn on its stored pixels: misplaced, no word;
    # not square, "mask is 128x96 but its image is 96x128" of two files 128x96 on disk; a second tester's: a float
    # RGB TIFF's tag was missed, a mask's own tag named as the image's, and a mask drawn as shown warned of
    import tifffile

    from ssimlib.data import DatasetError, read_mask

    mask = np.zeros((96, 128), np.uint8)
    mask[10:30, 20:60] = 255
    skimage.io.imsave(tmp_path / "d_mask.png", mask, check_contrast=False)
    skimage.io.imsave(tmp_path / "e_mask.png", mask[:96, :96], check_contrast=False)
    for name, size, orientation in (("d.jpg", (128, 96), 6), ("e.jpg", (96, 96), 3)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.new("L", size, 128).save(tmp_path / name, exif=exif)
    with pytest.raises(DatasetError, match=re.escape(
            f"{tmp_path / 'd_mask.png'}: mask is 128x96 but its image {tmp_path / 'd.jpg'} is 96x128 as read, turned "
            "90 degrees clockwise as its orientation tag (6) says, and its mask as stored")):
        read_mask(tmp_path / "d_mask.png", (128, 96), tmp_path / "d.jpg")
    with pytest.warns(UserWarning, match=re.escape("its image e.jpg is read turned 180 degrees as its orientation tag "
                                                   "(3) says, and its mask as stored")):
        read_mask(tmp_path / "e_mask.png", (96, 96), tmp_path / "e.jpg")
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((96, 96, 3), np.float32), photometric="rgb",
                     extratags=[(274, "H", 1, 6, True)])  # Pillow cannot open it
    with pytest.warns(UserWarning, match=re.escape("f.tif is read turned 90 degrees clockwise as its orientation tag")):
        read_mask(tmp_path / "e_mask.png", (96, 96), tmp_path / "f.tif")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(mask[:96, :96]).save(tmp_path / "g_mask.png", exif=exif)  # the mask tagged, its image not
    with pytest.warns(UserWarning, match=re.escape("its image e_mask.png is read as stored, and its mask turned 90 "
                                                   "degrees counter-clockwise as its orientation tag (8) says")):
        read_mask(tmp_path / "g_mask.png", (96, 96), tmp_path / "e_mask.png")
    with warnings.catch_warnings():  # no tag on either, and a mask drawn on the non-square image as shown: no word
        warnings.simplefilter("error")
        read_mask(tmp_path / "d_mask.png", (96, 128), tmp_path / "e_mask.png")
        skimage.io.imsave(tmp_path / "shown_mask.png", mask.T.copy(), check_contrast=False)
        read_mask(tmp_path / "shown_mask.png", (128, 96), tmp_path / "d.jpg")

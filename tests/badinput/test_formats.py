"""Well-formed but unusual files are read correctly (the positive controls of the corpus):
image modes checked at known pixels, and hand-assembled PyTorch files whose tensors are
strided views of their storage."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cr2des.data.images import MAX_IMAGE_PIXELS, _read_file, load_images
from cr2des.data.pth import read_state_dict

from . import pickles as pk


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 257, 32896], [65535, 1000, 12850]], dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    rgb = _read_file(tmp_path / "g16.png")
    # v * 255 / 65535 rounded: 0, 1, 128, 255, 4 (3.89), 50
    expected = np.array([[0, 1, 128], [255, 4, 50]], dtype=np.uint8)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], expected)


def test_palette_png_goes_through_its_palette(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putpixel((0, 0), 0)
    image.putpixel((1, 0), 1)
    image.save(tmp_path / "p.png")
    rgb = _read_file(tmp_path / "p.png")
    assert rgb[0, 0].tolist() == [10, 20, 30] and rgb[0, 1].tolist() == [200, 100, 50]


def test_rgba_keeps_colour_and_drops_alpha(tmp_path):
    pixels = np.array([[[255, 0, 0, 0], [0, 128, 255, 255]]], dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    rgb = _read_file(tmp_path / "a.png")
    assert rgb[0, 0].tolist() == [255, 0, 0] and rgb[0, 1].tolist() == [0, 128, 255]


def test_greyscale_with_alpha_becomes_grey_rgb(tmp_path):
    Image.fromarray(np.array([[[90, 10]]], dtype=np.uint8), "LA").save(tmp_path / "la.png")
    assert _read_file(tmp_path / "la.png")[0, 0].tolist() == [90, 90, 90]


@pytest.mark.parametrize(("cmyk", "rgb"), [((0, 255, 255, 0), (255, 0, 0)),
                                           ((255, 0, 255, 0), (0, 255, 0)),
                                           ((0, 0, 0, 255), (0, 0, 0)),
                                           ((0, 0, 0, 0), (255, 255, 255))])
def test_cmyk_jpeg_is_converted_to_rgb(tmp_path, cmyk, rgb):
    # flat 16x16 patches: JPEG's loss on a flat colour is a few levels at most
    Image.new("CMYK", (16, 16), cmyk).save(tmp_path / "c.jpg", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    pixel = _read_file(tmp_path / "c.jpg")[8, 8].astype(int)
    assert np.abs(pixel - np.array(rgb)).max() <= 3, pixel


def test_oversized_image_is_skipped_with_a_warning(tmp_path):
    from .cases import _png_header

    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a_big.png").write_bytes(_png_header(8000, 8000))
    assert MAX_IMAGE_PIXELS < 8000 * 8000
    Image.new("RGB", (20, 20), (1, 2, 3)).save(folder / "b_ok.png")
    images = load_images(folder, 1)
    assert images.names == (str(folder / "b_ok.png"),)
    assert any("a_big.png" in w and "above the limit" in w for w in images.warnings)


# --------------------------------------------------------------------------- .pth files
def _state(legacy: bool) -> tuple[dict, dict[str, bytes]]:
    store = pk.storage("0", 24, legacy=legacy)
    state = {
        "full.weight": pk.tensor(store, 0, (2, 3, 4), (12, 4, 1)),
        "transposed": pk.tensor(store, 0, (4, 3), (1, 4)),      # a .t() view
        "offset_row": pk.tensor(store, 12, (3,), (4,)),
        "scalar": pk.tensor(store, 23, (), ()),
        "broadcast": pk.tensor(store, 5, (2, 2), (0, 1)),       # expand(): stride 0
        "empty": pk.tensor(store, 24, (0, 5), (5, 1)),
    }
    return state, {"0": pk.floats(24)}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_hand_built_state_dict_reads_exactly(tmp_path, legacy):
    state, storages = _state(legacy)
    path = (pk.write_legacy if legacy else pk.write_zip)(tmp_path / "w.pth", state, storages)
    tensors = read_state_dict(path, use_torch=False)
    base = np.arange(24, dtype=np.float32)
    np.testing.assert_array_equal(tensors["full.weight"], base.reshape(2, 3, 4))
    np.testing.assert_array_equal(tensors["transposed"], base[:12].reshape(3, 4).T)
    np.testing.assert_array_equal(tensors["offset_row"], [12, 16, 20])
    assert tensors["scalar"].shape == () and tensors["scalar"] == 23
    np.testing.assert_array_equal(tensors["broadcast"], [[5, 6], [5, 6]])
    assert tensors["empty"].shape == (0, 5)


def test_tensor_ending_exactly_at_the_storage_end_is_allowed(tmp_path):
    store = pk.storage("0", 8)
    path = pk.write_zip(tmp_path / "w.pth", {"t": pk.tensor(store, 6, (2,), (1,))},
                        {"0": pk.floats(8)})
    np.testing.assert_array_equal(read_state_dict(path, use_torch=False)["t"], [6, 7])

"""Image sources: bundled photographs offline, directories, arrays, SL/ST splits."""

from __future__ import annotations

import numpy as np
import pytest

from cr2des.data.images import (
    IMAGENET_MEAN,
    SAMPLE_PHOTOS,
    Preprocess,
    learn_test_split,
    load_images,
    preprocess,
)
from cr2des.errors import DataError


def test_samples_load_offline_and_are_normalised():
    images = load_images("samples", 3)
    assert images.pixels.shape == (3, 3, 224, 224)
    assert images.pixels.dtype == np.float32
    assert images.names == ("astronaut", "chelsea", "coffee")
    assert not any(images.derived)
    # ImageNet normalisation of natural photos: roughly zero mean, unit spread
    assert abs(float(images.pixels.mean())) < 1.0
    assert 0.5 < float(images.pixels.std()) < 1.5


def test_every_sample_photo_loads():
    images = load_images("samples", len(SAMPLE_PHOTOS))
    assert images.names == SAMPLE_PHOTOS
    assert np.isfinite(images.pixels).all()


def test_more_than_available_derives_seeded_copies():
    a = load_images("samples", len(SAMPLE_PHOTOS) + 3, seed=5)
    b = load_images("samples", len(SAMPLE_PHOTOS) + 3, seed=5)
    c = load_images("samples", len(SAMPLE_PHOTOS) + 3, seed=6)
    assert a.n_derived == 3 and a.names[-3:] == ("astronaut~crop1", "chelsea~crop2",
                                                  "coffee~crop3")
    assert np.array_equal(a.pixels, b.pixels)
    assert not np.array_equal(a.pixels[-3:], c.pixels[-3:])
    assert "3 are seeded random crops/flips" in a.describe()


def test_learn_test_sets_are_disjoint():
    learn, test = learn_test_split("samples", 4, 4)
    assert learn.names == ("astronaut", "chelsea", "coffee", "rocket")
    assert test.names == ("motorcycle", "retina", "hubble_deep_field", "immunohistochemistry")


def test_learn_test_derive_only_from_their_own_images():
    learn, test = learn_test_split("samples", 20, 20)
    base = lambda name: name.split("~")[0]  # noqa: E731
    assert not {base(n) for n in learn.names} & {base(n) for n in test.names}
    assert len(learn) == len(test) == 20


def test_preprocess_is_resize_center_crop_normalise():
    # a uniform image stays uniform: each channel becomes (v/255 - mean) / std
    image = np.full((300, 500, 3), 128, dtype=np.uint8)
    out = preprocess(image, Preprocess())
    assert out.shape == (3, 224, 224)
    expected = (128 / 255 - np.array(IMAGENET_MEAN)) / np.array((0.229, 0.224, 0.225))
    assert np.allclose(out.mean(axis=(1, 2), dtype=np.float64), expected, atol=1e-5)
    assert np.allclose(out.std(axis=(1, 2), dtype=np.float64), 0.0, atol=1e-5)
    # center crop: a marker in the center survives, one at the far left does not
    image = np.zeros((256, 512, 3), dtype=np.uint8)
    image[:, :100] = 255
    out = preprocess(image, Preprocess(mean=(0, 0, 0), std=(1, 1, 1)))
    assert out.max() == 0.0


def test_directory_skips_bad_files_with_warnings(tmp_path):
    from skimage import data, io

    io.imsave(tmp_path / "b.png", data.chelsea(), check_contrast=False)
    (tmp_path / "sub").mkdir()
    io.imsave(tmp_path / "sub" / "c.jpg", data.coffee(), check_contrast=False)
    (tmp_path / "a.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "notes.txt").write_text("hello")
    images = load_images(tmp_path, 2)
    assert images.names == (str(tmp_path / "b.png"), str(tmp_path / "sub" / "c.jpg"))
    warnings = "\n".join(images.warnings)
    assert f"{tmp_path / 'a.jpg'}: skipped, cannot be read as an image" in warnings
    assert f"{tmp_path / 'notes.txt'}: skipped, not an image file (.txt)" in warnings


def test_directory_without_images_is_an_error(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"no usable image.*broken\.png"):
        load_images(tmp_path, 1)


def test_array_sources(tmp_path):
    from skimage import data

    raw = np.stack([data.chelsea()[:300, :300], data.coffee()[:300, :300]])
    np.save(tmp_path / "raw.npy", raw)
    images = load_images(tmp_path / "raw.npy", 2)
    assert images.pixels.shape == (2, 3, 224, 224)
    pre = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(np.float32)
    np.savez(tmp_path / "pre.npz", images=pre)
    images = load_images(tmp_path / "pre.npz", 3)
    assert np.array_equal(images.pixels, pre)
    with pytest.raises(DataError, match="holds 3 preprocessed images, 4 needed"):
        load_images(tmp_path / "pre.npz", 4)
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 5), dtype=np.float32))
    with pytest.raises(DataError, match=r"must be a float array \(N, C, H, W\)"):
        load_images(tmp_path / "bad.npy", 1)


def test_missing_source():
    with pytest.raises(DataError, match="no such image directory"):
        load_images("/nonexistent/dir", 1)

"""The vectorized hot paths against slow, plain reference implementations kept here.

Each fast function must give exactly (bit for bit) what a direct, obviously-correct
implementation of its definition gives: the speed-ups are checked independently of the
golden end-to-end results (``tests/test_golden.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cr2des.compression.mapping import (
    band_keys,
    column_code,
    encode_cells,
    map_layer,
    pattern_keys,
    row_bands,
)
from cr2des.description.spec import arch_from_dict
from cr2des.workloads.graph import workload_from_dict

from .conftest import ROOT


def make_arch(*, rows=16, ou_rows=4, cell_bits=2, encoding="differential", weight_bits=8):
    import yaml

    data = yaml.safe_load((ROOT / "arch" / "tiny.yaml").read_text())
    data["chip"]["tile"]["pe"]["crossbar"].update(rows=rows, cols=max(16, rows),
                                                  ou_rows=ou_rows, cell_bits=cell_bits)
    data["chip"]["tile"]["pe"]["adc"]["bits"] = 16  # enough for any OU here
    if ou_rows > 64:
        del data["chip"]["tile"]["pattern_buffer"]  # keys of wider patterns are fingerprints
    data.setdefault("mapping", {}).update(weight_encoding=encoding, weight_bits=weight_bits)
    return arch_from_dict(data)


# ----------------------------------------------------------------------------- slow references
def slow_cells(value: int, arch) -> list[int]:
    """MODEL.md section 1, one weight at a time: the cells of all columns of one output."""
    cb, slices = arch.crossbar.cell_bits, arch.slices
    mask = (1 << cb) - 1
    if arch.mapping.weight_encoding == "offset":
        biased = value + (1 << (arch.mapping.weight_bits - 1))
        return [(biased >> (s * cb)) & mask for s in range(slices)]
    pos = [(value >> (s * cb)) & mask if value > 0 else 0 for s in range(slices)]
    neg = [(-value >> (s * cb)) & mask if value < 0 else 0 for s in range(slices)]
    return pos + neg


def slow_row_bands(k, rows, ou_rows):
    """(start, size, crossbar row) of every band, by walking the rows."""
    out = []
    for block, block_start in enumerate(range(0, k, rows)):
        block_end = min(k, block_start + rows)
        for start in range(block_start, block_end, ou_rows):
            out.append((start, min(ou_rows, block_end - start), block))
    return out


def slow_band_patterns(w: np.ndarray, arch) -> list[list[tuple[int, ...]]]:
    """Per band, the weight pattern of every column: the tuple of its cells down the band
    (rows past a short band's end count as empty cells)."""
    k, n = w.shape
    xb = arch.crossbar
    patterns = []
    for start, size, _ in slow_row_bands(k, xb.rows, xb.ou_rows):
        cells = [[slow_cells(int(w[r, j]), arch) for j in range(n)]
                 for r in range(start, start + size)]
        columns = []
        for j in range(n):
            for c in range(len(cells[0][j])):
                column = [cells[r][j][c] for r in range(size)]
                columns.append(tuple(column + [0] * (xb.ou_rows - size)))
        patterns.append(columns)
    return patterns


def slow_key(pattern: tuple[int, ...], cell_bits: int) -> int:
    return sum(cell << (r * cell_bits) for r, cell in enumerate(pattern))


ARCHS = {
    "cr2-like 8x8, 2-bit cells": dict(rows=128, ou_rows=8),
    "tiny 4-row OUs": dict(rows=16, ou_rows=4),
    "short bands (rows not a multiple of ou_rows)": dict(rows=20, ou_rows=9),
    "1-bit cells, 16-row OUs": dict(rows=32, ou_rows=16, cell_bits=1),
    "4-bit cells": dict(rows=16, ou_rows=8, cell_bits=4),
    "ISAAC-like offset, wide 64-row OUs": dict(rows=64, ou_rows=64, encoding="offset"),
    "offset, 3-bit cells": dict(rows=24, ou_rows=6, cell_bits=3, encoding="offset"),
}


def weights(rng, k, n, sparsity=0.5, weight_bits=8):
    qmax = 2 ** (weight_bits - 1) - 1
    w = np.clip(np.rint(rng.laplace(0, qmax / 6, (k, n))), -qmax, qmax)
    w[rng.random((k, n)) < sparsity] = 0
    # repeated columns make shared (WPR) patterns
    w[:, n // 2:] = w[:, :n - n // 2]
    return w.astype(np.int8 if weight_bits <= 8 else np.int16)


# ----------------------------------------------------------------------------- mapping
@pytest.mark.parametrize("geometry", list(ARCHS.values()), ids=list(ARCHS))
def test_encode_cells_matches_the_definition(geometry):
    arch = make_arch(**geometry)
    w = weights(np.random.default_rng(1), 7, 5)
    got = encode_cells(w, column_code(5, arch), arch)
    expected = [[c for j in range(5) for c in slow_cells(int(w[r, j]), arch)] for r in range(7)]
    assert got.tolist() == expected


@settings(max_examples=60)
@given(st.integers(1, 400), st.integers(1, 130), st.integers(1, 20))
def test_row_bands_match_walking_the_rows(k, rows, ou_rows):
    ou_rows = min(ou_rows, rows)
    bands = row_bands(k, rows, ou_rows)
    assert list(zip(bands.starts.tolist(), bands.sizes.tolist(), bands.crossbar_row.tolist(),
                    strict=True)) == slow_row_bands(k, rows, ou_rows)
    assert bands.starts.dtype == bands.sizes.dtype == bands.crossbar_row.dtype == np.int64


@pytest.mark.parametrize("geometry", list(ARCHS.values()), ids=list(ARCHS))
def test_band_keys_equal_the_cell_by_cell_keys(geometry):
    arch = make_arch(**geometry)
    rng = np.random.default_rng(2)
    k, n = 53, 6
    w = weights(rng, k, n)
    xb = arch.crossbar
    bands = row_bands(k, xb.rows, xb.ou_rows)
    code = column_code(n, arch)
    chunks = list(band_keys(w, bands, code, arch))
    keys = np.concatenate([keys for _, _, keys in chunks])
    assert [(f, last) for f, last, _ in chunks][-1][1] == bands.count
    # the per-band-chunk implementation that verification uses, over the whole matrix
    cells = encode_cells(w, code, arch)
    assert np.array_equal(keys, pattern_keys(cells, bands, 0, bands.count, 0, xb.cell_bits))
    assert keys.dtype == pattern_keys(cells, bands, 0, 1, 0, xb.cell_bits).dtype
    # and the plain definition, pattern by pattern
    per_word = 64 // xb.cell_bits
    for b, columns in enumerate(slow_band_patterns(w, arch)):
        for c, pattern in enumerate(columns):
            if keys.ndim == 2:
                assert int(keys[b, c]) == slow_key(pattern, xb.cell_bits)
            else:
                for word in range(keys.shape[2]):
                    part = pattern[word * per_word:(word + 1) * per_word]
                    assert int(keys[b, c, word]) == slow_key(part, xb.cell_bits)


def test_band_keys_chunks_cover_every_band(monkeypatch):
    import cr2des.compression.mapping as mapping

    arch = make_arch(rows=128, ou_rows=8)
    w = weights(np.random.default_rng(3), 300, 40)
    bands = row_bands(300, 128, 8)
    code = column_code(40, arch)
    whole = np.concatenate([keys for _, _, keys in band_keys(w, bands, code, arch)])
    monkeypatch.setattr(mapping, "_CHUNK_BYTES", 1)  # one band per chunk
    chunks = list(band_keys(w, bands, code, arch))
    assert [(f, last) for f, last, _ in chunks] == [(b, b + 1) for b in range(bands.count)]
    assert np.array_equal(np.concatenate([keys for _, _, keys in chunks]), whole)


@pytest.mark.parametrize("geometry", list(ARCHS.values()), ids=list(ARCHS))
@pytest.mark.parametrize("groups", [1, 2])
def test_map_layer_counts_match_sets_of_patterns(geometry, groups):
    arch = make_arch(**geometry)
    rng = np.random.default_rng(4)
    cin, cout = 6 * groups, 4 * groups
    workload = workload_from_dict({"version": 1, "name": "one", "input": [cin, 5, 5],
                                   "layers": [{"name": "conv", "op": "conv", "out": cout,
                                               "kernel": 3, "groups": groups}]})
    layer = workload["conv"]
    q = weights(rng, cout, cin // groups * 9).reshape(layer.weight_shape)
    lmap = map_layer(layer, q, arch)
    from cr2des.data.weights import weight_matrices

    nonzero, unique = [], []
    for w in weight_matrices(layer, q, arch.mapping.row_order):
        for columns in slow_band_patterns(w, arch):
            kept = [p for p in columns if any(p)]
            nonzero.append(len(kept))
            unique.append(len(set(kept)))
    assert lmap.nonzero.tolist() == nonzero and lmap.unique.tolist() == unique
    assert lmap.columns == len(slow_band_patterns(weight_matrices(layer, q)[0], arch)[0])


# ----------------------------------------------------------------------------- images
def test_sample_photos_are_the_arrays_scikit_image_returns():
    from skimage import data

    from cr2des.data.images import SAMPLE_PHOTOS, _sample_loaders

    loaders = _sample_loaders()
    assert list(loaders) == list(SAMPLE_PHOTOS)
    for name in SAMPLE_PHOTOS:
        expected = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
        got = loaders[name]()
        assert got.dtype == expected.dtype and np.array_equal(got, expected), name
        assert got.flags.writeable


@pytest.mark.parametrize(("shape", "size", "dtype"), [
    ((512, 512, 3), (256, 256), np.uint8),  # down, square
    ((427, 640, 3), (256, 384), np.uint8),  # down, wide
    ((1411, 1411, 3), (37, 37), np.uint8),  # far down: a wide Gaussian
    ((120, 90, 3), (299, 224), np.uint8),  # up: no pre-filter
    ((300, 451, 3), (256, 385), np.float32),
    ((64, 48, 1), (20, 15), np.float64),
])
def test_resize_is_scikit_images(shape, size, dtype):
    from skimage.transform import resize

    from cr2des.data.images import _resize

    rng = np.random.default_rng(5)
    image = (rng.random(shape) * 255).astype(dtype)
    down = size[0] < shape[0]
    expected = resize(image, size, order=1, anti_aliasing=down, preserve_range=True)
    got = _resize(image, size, anti_aliasing=down)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_preprocessed_samples_are_unchanged():
    """The whole preprocessing of every sample photo against scikit-image's loaders and
    resize, at the zoo's 224 pixels and (three of them) at the tiny network's 16."""
    from skimage import data
    from skimage.transform import resize

    from cr2des.data.images import SAMPLE_PHOTOS, Preprocess, _to_rgb, load_images

    for size, count in ((224, len(SAMPLE_PHOTOS)), (16, 3)):
        prep = Preprocess(size=size)
        got = load_images("samples", count, prep=prep).pixels
        for i, name in enumerate(SAMPLE_PHOTOS[:count]):
            raw = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
            image = _to_rgb(raw, name)
            h, w = image.shape[:2]
            scale = prep.resize_to / min(h, w)
            new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
            resized = resize(image, (new_h, new_w), order=1, anti_aliasing=scale < 1,
                             preserve_range=True)
            top, left = (new_h - size) // 2, (new_w - size) // 2
            crop = resized[top:top + size, left:left + size] / 255.0
            mean, std = np.asarray(prep.mean), np.asarray(prep.std)
            expected = ((crop - mean) / std).transpose(2, 0, 1).astype(np.float32)
            assert np.array_equal(got[i], expected), (size, name)


# ----------------------------------------------------------------------------- reference
@pytest.mark.parametrize("row_order", ["channel_major", "position_major"])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("conv", [
    dict(kernel=3, pad=1), dict(kernel=3, stride=2, pad=1, groups=2),
    dict(kernel=3, pad=2, dilation=2, groups=6), dict(kernel=1), dict(kernel=[2, 3], stride=[1, 2]),
])
def test_float_vectors_are_the_cast_codes(row_order, signed, conv):
    """The executor's float32 im2col (gathered and cast at once) against the codes gathered,
    then read as values and cast (the former two steps)."""
    from cr2des.data.reference import LayerInput

    workload = workload_from_dict({"version": 1, "name": "one", "input": [6, 9, 8],
                                   "layers": [{"name": "conv", "op": "conv", "out": 6,
                                               **conv},
                                              {"name": "fc", "op": "fc", "out": 3,
                                               "inputs": ["conv"]}]})
    rng = np.random.default_rng(6)
    for layer, shape in ((workload["conv"], (3, 6, 9, 8)),
                         (workload["fc"], (3, workload["fc"].matrix_shape[0]))):
        q = rng.integers(0, 256, shape).astype(np.uint8)
        li = LayerInput(layer, q, 1.0, signed, 8, row_order)
        for max_bytes in (10**9, 200):  # one chunk, and many
            codes = list(li.chunks(max_bytes))
            floats = list(li.chunks(max_bytes, dtype=np.float32))
            assert [f for f, _ in codes] == [f for f, _ in floats]
            for (_, c), (_, x) in zip(codes, floats, strict=True):
                expected = c.view(np.int8 if signed else np.uint8).astype(np.float32)
                assert x.dtype == np.float32 and x.flags.c_contiguous
                assert np.array_equal(x, expected)
            assert np.array_equal(np.concatenate([c for _, c in codes]), slow_vectors(li))


def slow_vectors(li) -> np.ndarray:
    """im2col by its definition: one vector per image, output row and column, per group the
    kernel's inputs in the row order (zero outside the image)."""
    layer = li.layer
    if layer.op == "fc":
        return li.q[:, None, :]
    p = layer.params
    (kh, kw), (sh, sw), (dh, dw) = p.kernel, p.stride, p.dilation
    top, left = p.padding[0], p.padding[1]
    n, c, h, w = li.q.shape
    _, ho, wo = layer.shape
    cg = c // p.groups
    vectors = []
    for image in range(n):
        for r in range(ho):
            for col in range(wo):
                per_group = []
                for g in range(p.groups):
                    def at(ci, i, j, image=image, r=r, col=col, g=g):
                        y, x = r * sh + i * dh - top, col * sw + j * dw - left
                        inside = 0 <= y < h and 0 <= x < w
                        return int(li.q[image, g * cg + ci, y, x]) if inside else 0
                    if li.row_order == "position_major":
                        order = [(ci, i, j) for i in range(kh) for j in range(kw)
                                 for ci in range(cg)]
                    else:
                        order = [(ci, i, j) for ci in range(cg) for i in range(kh)
                                 for j in range(kw)]
                    per_group.append([at(*o) for o in order])
                vectors.append(per_group)
    return np.array(vectors, dtype=np.uint8)


# ----------------------------------------------------------------------------- patterns
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32])
def test_histogram_and_lookup_match_counting_by_hand(dtype):
    from collections import Counter

    from cr2des.compression.patterns import PatternBuffer, count_patterns

    rng = np.random.default_rng(7)
    n_bands = 5
    keys = (rng.integers(0, 40, (60, n_bands, 8)) * (rng.random((60, n_bands, 8)) < 0.7))
    keys = (keys * (1 + (np.iinfo(dtype).max // 64))).astype(dtype)
    counts = count_patterns(keys, n_bands)
    by_hand = Counter((b, int(keys[v, b, c])) for v in range(60) for b in range(n_bands)
                      for c in range(8))
    got = {(int(b), int(k)): int(n) for b, k, n in
           zip(counts.band, counts.key, counts.count, strict=True)}
    assert got == dict(by_hand) and list(got) == sorted(by_hand)
    if dtype != np.uint32:
        chosen = sorted(by_hand)[::3]
        buffer = PatternBuffer(n_bands, 8 * np.dtype(dtype).itemsize,
                               np.array([b for b, _ in chosen]),
                               np.array([k for _, k in chosen], dtype=np.uint64))
        hit = buffer.lookup(keys)
        expected = np.array([[[(b, int(keys[v, b, c])) in set(chosen) for c in range(8)]
                              for b in range(n_bands)] for v in range(60)])
        assert np.array_equal(hit, expected)

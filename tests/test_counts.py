"""Action counts against hand-derived values.

The crossbar counts use MODEL.md's appendix example (``W`` 8 x 2, two input vectors, 4x4
OUs on the tiny architecture, differential 2-bit cells: 16 columns per band, 8 bit-planes;
a one-entry buffer holding (band 0, ``1000``)).  From the appendix: 16 cycles per band;
non-zero input patterns 3 in band 0 (``1000`` twice, ``1100`` once) and 2 in band 1; the
buffer hits twice in band 0; band 0 stores 2 non-zero / 1 unique columns, band 1 4 / 3.
Every expected number below is derived in its comment from those facts and the widths of
``arch/tiny.yaml`` (input/output registers 256 bits by default, buffer lines 64 bits,
WPR index 16 bits, eDRAM 64 bits = 8 lanes).
"""

from __future__ import annotations

import numpy as np
import pytest

from cr2des.compression.mapping import SCHEMES
from cr2des.compression.patterns import PatternBuffer, classify_layer, learn_layer, scheme_counts
from cr2des.compression.study import LayerStudy, entry_width, tag_bits
from cr2des.costs.counts import (
    COUNTS,
    crossbar_counts,
    digital_counts,
    wpr_entry_bits,
    wpr_index_bytes,
)
from cr2des.description.spec import load_arch
from cr2des.workloads.graph import workload_from_dict

from .test_patterns import example


@pytest.fixture(scope="module")
def appendix():
    arch, _, lmap, li = example()
    learned = learn_layer(li, lmap.bands, arch.dac_bits, 1)
    buffer = PatternBuffer(2, 8, np.array([0]), np.array([0b0001], dtype=np.uint64))
    counts = classify_layer(li, lmap.bands, arch.dac_bits, 1, buffer)
    layer = LayerStudy("fc", lmap, learned, entry_width(lmap, arch), buffer, counts,
                       {s: scheme_counts(lmap, counts, s) for s in SCHEMES})
    return arch, layer


def test_entry_carries_its_tag(appendix):
    arch, layer = appendix
    # tag: 4-row x 1-bit pattern + 1 bit naming one of 2 bands + valid bit = 6 bits
    assert tag_bits(layer.map, arch) == 6
    # W_j: widest band's 3 unique columns x 8-bit partial sums + 6 = 30 bits -> 4 bytes
    assert layer.width_bytes == 4


def test_wpr_index_size(appendix):
    _, layer = appendix
    # entry: column among 16 (4 bits) + twin among at most 3 unique columns (2 bits)
    assert wpr_entry_bits(layer.map) == 6
    # one repeated column per band (2 - 1 and 4 - 3): 2 entries x 6 bits -> 2 bytes
    assert wpr_index_bytes(layer.map) == 2


COMMON = {
    # 2 vectors x 8 inputs x 8 bits = 128 bits: one 256-bit register write
    "input_register_writes": 1,
    # every (vector, band, bit-plane) reads its 4-bit pattern: 2 x 2 x 8
    "input_register_reads": 32,
    # 2 vectors x 8 one-byte inputs
    "edram_read_bytes": 16,
    # 2 images (one vector each) x 2 one-byte outputs; one 256-bit register access
    "edram_write_bytes": 4, "tile_output_register_accesses": 1,
}

EXPECTED = {
    # 16 cycles x 4 OUs x 2 bands; 16 cycles x 16 columns x 2 bands conversions (each
    # sampled); each OU drives its 4 rows; 512 results x 16 bits / 256 = 32 accesses
    "dense": {"ou_activations": 128, "adc_conversions": 512, "sample_hold_samples": 512,
              "dac_drives": 512, "shift_adds": 512, "output_register_accesses": 32},
    # (3 + 2) cycles x 1 OU; conversions 3 x 2 + 2 x 4 = 14; drives 5 x 4 rows
    "sparse": {"ou_activations": 5, "adc_conversions": 14, "sample_hold_samples": 14,
               "dac_drives": 20, "shift_adds": 14, "output_register_accesses": 1},
    # conversions 3 x 1 + 2 x 3 = 9, copies 3 x 1 + 2 x 1 = 5, results 14;
    # index (6-bit entry per band, one 16-bit word) fetched once per (vector, band) with a
    # non-zero pattern: band 0 by both vectors (x0 = 1: plane 0; x1 = 3, 1: planes 0, 1),
    # band 1 by vector 0 only (5: planes 0, 2): 3 reads; the register is written 3 x 16
    # bits and read 6 bits on each of the 5 computed cycles: 48 + 30
    "wpr": {"ou_activations": 5, "adc_conversions": 9, "sample_hold_samples": 9,
            "dac_drives": 20, "shift_adds": 14, "output_register_accesses": 1,
            "wpr_index_reads": 3, "wpr_index_register_bits": 78},
    # band 0 computes 3 - 2 hits = 1 cycle: OUs 1 + 2 = 3, conversions 1 x 1 + 2 x 3 = 7,
    # copies 1 + 2 = 3, served 2 hits x 2 non-zero columns = 4: results 14; drives 3 x 4;
    # 5 lookups, 2 hits, 3 misses; a 4-byte entry is one 64-bit line: 2 reads, 1 fill;
    # the hits are vector 0's plane 0 and vector 1's plane 1 on band 0 (both 1000), so band 0
    # computes only vector 1's plane 0 (1100): index fetches 1 (band 0) + 1 (band 1); the
    # register is written 2 x 16 bits and read 6 bits on 1 + 2 computed cycles: 32 + 18
    "cr2": {"ou_activations": 3, "adc_conversions": 7, "sample_hold_samples": 7,
            "dac_drives": 12, "shift_adds": 14, "output_register_accesses": 1,
            "buffer_lookups": 5, "buffer_hits": 2, "buffer_misses": 3, "buffer_line_reads": 2,
            "buffer_fill_lines": 1, "wpr_index_reads": 2, "wpr_index_register_bits": 50},
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_crossbar_counts_by_hand(appendix, scheme):
    arch, layer = appendix
    got = crossbar_counts(layer, arch, scheme, activation=False)
    expected = dict.fromkeys(COUNTS, 0) | COMMON | EXPECTED[scheme]
    assert got == expected


def test_vectors_with_computed_cycles_by_hand(appendix):
    _, layer = appendix
    # band 0: both vectors have a non-zero pattern; band 1: vector 0 only.  With the buffer
    # serving (band 0, 1000), vector 0 computes nothing on band 0
    assert layer.counts.vectors_nonzero.tolist() == [2, 1]
    assert layer.counts.vectors_computed.tolist() == [1, 1]


@pytest.mark.parametrize("scheme, reads", [("wpr", 5), ("cr2", 3)])
def test_index_read_on_every_computed_cycle_when_asked(appendix, scheme, reads):
    """``fetch: per_cycle`` reads the index on every computed cycle of a band with copies
    (wpr: 3 + 2 cycles; cr2: 1 + 2) and holds nothing in a register."""
    import dataclasses

    arch, layer = appendix
    tile = arch.chip.tile
    tile = dataclasses.replace(tile, wpr_index=dataclasses.replace(tile.wpr_index,
                                                                   fetch="per_cycle"))
    arch = dataclasses.replace(arch, chip=dataclasses.replace(arch.chip, tile=tile))
    got = crossbar_counts(layer, arch, scheme, activation=False)
    assert (got["wpr_index_reads"], got["wpr_index_register_bits"]) == (reads, 0)


def test_activation_unit_counts_outputs(appendix):
    arch, layer = appendix
    # 4 output elements over 8 lanes: one vector operation
    assert crossbar_counts(layer, arch, "dense", activation=True)["activation_ops"] == 1


def test_digital_counts_by_hand():
    arch = load_arch("tiny")
    w = workload_from_dict({"version": 1, "name": "d", "input": [4, 4, 4], "layers": [
        {"name": "pool", "op": "maxpool", "kernel": 2, "stride": 2},
        {"name": "sm", "op": "softmax", "inputs": ["pool"]},
        {"name": "head", "op": "conv", "out": 2, "kernel": 1}]})  # a workload maps a layer
    pool = digital_counts(w["pool"], arch, images=3)
    # output 4 x 2 x 2; per output row 4 channels x 2 columns x 4 window elements = 32
    # element operations over 8 lanes = 4 vector operations; 2 rows; 3 images
    assert pool["pool_ops"] == 3 * 2 * 4
    # reads the 4 x 4 x 4 input, writes 4 x 2 x 2, one byte each, per image
    assert pool["edram_read_bytes"] == 3 * 64 and pool["edram_write_bytes"] == 3 * 16
    # softmax: 3 operations per element, 4 x 2 elements per row -> 24 / 8 = 3 per row
    assert digital_counts(w["sm"], arch, images=1)["softmax_ops"] == 2 * 3


def test_wpr_index_takes_the_cheaper_encoding(appendix):
    import dataclasses

    from cr2des.costs.counts import wpr_band_bits

    _, layer = appendix
    # one band of 16 columns, 12 non-zero, 2 unique: 10 repeated columns.  Explicit entries
    # 10 x (4 column bits + 1 twin bit) = 50 bits; bitmap 16 + 10 x 1 = 26 bits
    lmap = dataclasses.replace(layer.map, nonzero=np.array([12]), unique=np.array([2]))
    assert wpr_band_bits(lmap).tolist() == [26]
    # the appendix's bands repeat one column each: explicit 6 bits beats 16 + 2
    assert wpr_band_bits(layer.map).tolist() == [6, 6]


@pytest.mark.parametrize("share, per_tile", [("tile", [2, 2]), ("replica", [4, 4])])
def test_replicas_on_one_tile_share_the_index(appendix, share, per_tile):
    """Four one-PE replicas of the appendix layer (a 2-byte index) on PEs 0-3 of a chip of
    2-PE tiles: tiles 0 and 1 host two replicas each."""
    import dataclasses
    from types import SimpleNamespace

    from cr2des.compression.mapping import LayerPlacement
    from cr2des.costs.counts import wpr_index_tile_bytes

    arch, layer = appendix
    tile = arch.chip.tile
    tile = dataclasses.replace(tile, wpr_index=dataclasses.replace(tile.wpr_index, share=share))
    arch = dataclasses.replace(arch, chip=dataclasses.replace(arch.chip, tile=tile))
    placement = SimpleNamespace(layers={"fc": LayerPlacement(1, 1, 4, 0)})
    study = SimpleNamespace(arch=arch, layers={"fc": layer}, placements={"wpr": placement})
    assert wpr_index_tile_bytes(study, "wpr")[:3].tolist() == [*per_tile, 0]

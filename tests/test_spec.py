"""Loading and validating architecture descriptions: one test per rule, each asserting the
message, the dotted path and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cr2des.description.spec import ARCH_DIR, arch_from_dict, load_arch, required_adc_bits
from cr2des.errors import SpecError

from .conftest import set_path


def load_modified(tmp_path: Path, data: dict, dotted: str, value) -> SpecError:
    set_path(data, dotted, value)
    path = tmp_path / "arch.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError) as info:
        load_arch(path)
    err = info.value
    assert err.file == str(path)
    assert str(err).startswith(f"{path}: ")
    return err


@pytest.mark.parametrize("name", ["isaac", "cr2", "tiny"])
def test_bundled_descriptions_load(name):
    arch = load_arch(name)
    assert arch.name == name
    assert arch.source == str(ARCH_DIR / f"{name}.yaml")


def test_units_are_parsed_into_si():
    arch = load_arch("isaac")
    pe = arch.chip.tile.pe
    assert pe.crossbar.read_latency_s == pytest.approx(100e-9)
    assert pe.adc.sample_rate_hz == pytest.approx(1.28e9)
    assert pe.adc.power_w == pytest.approx(2e-3)
    assert arch.chip.tile.edram.capacity_bytes == 65536
    assert arch.chip.network.routers == 42
    assert arch.slices == 4 and arch.bit_planes == 8
    assert arch.crossbars_per_chip == 168 * 12 * 8


def test_descriptions_are_frozen():
    arch = load_arch("tiny")
    with pytest.raises(AttributeError):
        arch.chip.tiles = 3  # type: ignore[misc]


def test_unknown_key_lists_allowed(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.adc.bitz", 5)
    assert err.path == "chip.tile.pe.adc.bitz"
    assert "unknown key 'bitz'" in err.message
    for key in ("count", "area", "power", "bits", "sample_rate", "bit_saving"):
        assert key in err.message


def test_unknown_top_level_key(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chips", 3)
    assert err.path == "chips"
    assert "allowed keys: version, name, description, chip, mapping" in err.message


def test_missing_required_key(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tiles", ...)
    assert err.path == "chip"
    assert err.message == "missing required key 'tiles'"


def test_wrong_type(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pes", "many")
    assert err.path == "chip.tile.pes"
    assert err.message == "expected an integer, got 'many'"


def test_bits_below_one(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.adc.bits", 0)
    assert err.path == "chip.tile.pe.adc.bits"
    assert err.message == "must be >= 1, got 0"


def test_bad_unit(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.crossbar.read_latency", "10nJ")
    assert err.path == "chip.tile.pe.crossbar.read_latency"
    assert "unit 'nJ' in '10nJ' is not a time unit" in err.message


def test_bare_number_needs_unit(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.adc.power", 2)
    assert err.path == "chip.tile.pe.adc.power"
    assert "expected a power with a unit such as '2mW'" in err.message


def test_zero_capacity(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.edram.capacity", "0KiB")
    assert err.path == "chip.tile.edram.capacity"
    assert err.message == "must be > 0, got '0KiB'"


def test_zero_pattern_buffer_capacity(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pattern_buffer.capacity", 0)
    assert err.path == "chip.tile.pattern_buffer.capacity"
    assert err.message == "must be > 0, got 0"


def test_bad_choice(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "mapping.weight_encoding", "twos")
    assert err.path == "mapping.weight_encoding"
    assert err.message == "must be one of differential, offset; got 'twos'"


def test_ou_rows_larger_than_crossbar(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.crossbar.ou_rows", 32)
    assert err.path == "chip.tile.pe.crossbar.ou_rows"
    assert err.message == "OU of 32 rows does not fit a crossbar of 16 rows"


def test_ou_cols_larger_than_crossbar(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.crossbar.ou_cols", 17)
    assert err.path == "chip.tile.pe.crossbar.ou_cols"
    assert err.message == "OU of 17 columns does not fit a crossbar of 16 columns"


def test_adc_too_few_bits(tmp_path, tiny_arch_data):
    # 4-row OU, 2-bit cells, 1-bit DAC: 4*3*1 = 12 levels above 0 -> ceil(log2(13)) = 4 bits
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.adc.bits", 3)
    assert err.path == "chip.tile.pe.adc.bits"
    assert err.message.startswith("must be >= 4 for an OU of 4 rows with 2-bit cells and "
                                  "1-bit DACs")
    assert err.message.endswith("got 3")


def test_adc_bits_follow_dac_bits(tmp_path, tiny_arch_data):
    # 2-bit DAC: 4*3*3 = 36 -> ceil(log2(37)) = 6 bits
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.dac.bits", 2)
    assert err.path == "chip.tile.pe.adc.bits"
    assert "must be >= 6" in err.message


@pytest.mark.parametrize(("rows", "cell", "dac", "bits"),
                         [(128, 2, 1, 9), (8, 2, 1, 5), (4, 2, 1, 4), (16, 1, 1, 5), (9, 2, 1, 5),
                          (1, 1, 1, 1), (8, 2, 2, 7)])
def test_required_adc_bits(rows, cell, dac, bits):
    assert required_adc_bits(rows, cell, dac) == bits


def test_isaac_bit_saving_is_what_lets_8_bits_pass(tmp_path):
    data = yaml.safe_load((ARCH_DIR / "isaac.yaml").read_text())
    err = load_modified(tmp_path, data, "chip.tile.pe.adc.bit_saving", 0)
    assert err.path == "chip.tile.pe.adc.bits"
    assert "must be >= 9" in err.message


def test_input_bits_multiple_of_dac(tmp_path, tiny_arch_data):
    set_path(tiny_arch_data, "chip.tile.pe.dac.bits", 3)
    set_path(tiny_arch_data, "chip.tile.pe.adc.bits", 7)
    err = load_modified(tmp_path, tiny_arch_data, "mapping.input_bits", 8)
    assert err.path == "mapping.input_bits"
    assert err.message == "input_bits (8) must be a multiple of the DAC resolution (3)"


def test_pattern_key_limit(tmp_path, tiny_arch_data):
    set_path(tiny_arch_data, "chip.tile.pe.crossbar.rows", 128)
    set_path(tiny_arch_data, "chip.tile.pe.crossbar.ou_rows", 128)
    set_path(tiny_arch_data, "chip.tile.pe.adc.bits", 9)
    err = load_modified(tmp_path, tiny_arch_data, "chip.tile.pe.crossbar.ou_rows", 128)
    assert err.path == "chip.tile.pe.crossbar.ou_rows"
    assert "pattern-buffer (IPR) keys hold at most 64 bits" in err.message


def test_network_not_connected(tmp_path, tiny_arch_data):
    set_path(tiny_arch_data, "chip.network.topology", "edges")
    set_path(tiny_arch_data, "chip.network.concentration", 4)
    set_path(tiny_arch_data, "chip.network.dims", ...)
    err = load_modified(tmp_path, tiny_arch_data, "chip.network.edges", [[0, 1], [2, 3]])
    assert err.path == "chip.network.edges"
    assert err.message == "network is not connected: routers [0, 1] cannot reach router 2"


def test_network_too_small(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.network.dims", [1, 2])
    assert err.path == "chip.network.dims"
    assert err.message == "2 routers x concentration 1 = 2 ports cannot attach 16 tiles"


def test_dims_with_edges(tmp_path, tiny_arch_data):
    set_path(tiny_arch_data, "chip.network.topology", "edges")
    err = load_modified(tmp_path, tiny_arch_data, "chip.network.edges", [[0, 1], [1, 2], [2, 3]])
    assert err.path == "chip.network.dims"


def test_self_loop_edge(tmp_path, tiny_arch_data):
    set_path(tiny_arch_data, "chip.network.topology", "edges")
    set_path(tiny_arch_data, "chip.network.dims", ...)
    err = load_modified(tmp_path, tiny_arch_data, "chip.network.edges", [[0, 1], [2, 2]])
    assert err.path == "chip.network.edges[1]"


def test_cmesh_needs_concentration(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.network.topology", "cmesh")
    assert err.path == "chip.network.concentration"


def test_explicit_edges_accepted(tiny_arch_data):
    set_path(tiny_arch_data, "chip.network.topology", "edges")
    set_path(tiny_arch_data, "chip.network.concentration", 4)
    set_path(tiny_arch_data, "chip.network.dims", ...)
    set_path(tiny_arch_data, "chip.network.edges", [[0, 1], [1, 2], [2, 3], [3, 0]])
    arch = arch_from_dict(tiny_arch_data)
    assert arch.chip.network.routers == 4


def test_list_item_path(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "chip.network.dims", [2, "two"])
    assert err.path == "chip.network.dims[1]"
    assert err.message == "expected an integer, got 'two'"


def test_unsupported_version(tmp_path, tiny_arch_data):
    err = load_modified(tmp_path, tiny_arch_data, "version", 7)
    assert err.path == "version"
    assert "unsupported description version 7" in err.message


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("version: 1\nchip: {tiles: 4\n")
    with pytest.raises(SpecError) as info:
        load_arch(path)
    assert info.value.file == str(path)
    assert "invalid YAML at line" in info.value.message


def test_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="expected a mapping with keys"):
        load_arch(path)


def test_missing_file_lists_bundled():
    with pytest.raises(SpecError) as info:
        load_arch("nonexistent")
    assert "bundled: cr2, isaac, tiny" in info.value.message

"""Cost models: ADC and SRAM figures scaled from published reference points.

Both models turn a few published numbers (given in the architecture YAML with their source)
into the area, static power and per-action energy of a unit of another size.  No external
tool runs here; the scaling laws and their provenance are stated below and in
``docs/energy.md``.

**ADC** (``pe.adc``, when ``reference_bits`` is set): the YAML's ``power`` and ``area``
describe an ADC of ``reference_bits`` at ``sample_rate``; one conversion costs
``power / sample_rate`` at that resolution.  For ``bits`` the energy per conversion and the
area are multiplied by a resolution factor:

- ``isaac``: ``2^(bits - reference_bits)`` for both (ISAAC, ISCA 2016, section 6, which
  scales its 8-bit SAR ADC by the Walden figure of merit; also the scaling
  hwcomponents-library's ``IsaacADC`` applies: ``pow_base(2)`` for energy and area);
- ``saberi``: the capacitive-DAC SAR analysis of Saberi et al. (TCAS-I 2011) as tabulated
  for 32 nm in hwcomponents-library's ``isaac.py`` (Accelergy project, MIT licence, commit
  19ecd2f): energy 0.79, 0.99, 1.20, 1.42, 1.67, 1.97, 2.38 pJ and area 361, 477, 627, 845,
  1200, 1828, 3002 µm² for 4..10 bits, used as ratios to the reference resolution.

The energy per conversion does not depend on the sample rate (the Walden regime, in which
power grows linearly with the rate; Murmann's ADC survey, the data behind
hwcomponents-adc, shows this holds for 4-8 bit ADCs up to about 1 GS/s), so the power of a
unit is ``energy x sample_rate``.  With ``reference_bits == bits`` the YAML's numbers are
returned unchanged: ISAAC's 8-bit, 1.28 GS/s ADC keeps its table entry (2 mW, 0.0012 mm²).

**SRAM** (a memory with a ``reference``): area, leakage and energy per access of a memory
of ``capacity`` bytes, ``width``-bit accesses and ``ports`` ports, scaled from a reference
SRAM (``C0, w0, p0``) with CACTI's trends as Accelergy's hwcomponents records them
(``hwcomponents.scaling``: ``cacti_depth_energy``/``cacti_depth_leak`` = depth^0.78,
``cacti_depth_area`` linear; width linear for area, energy and leakage, as in
hwcomponents-library's ``IsaacEDRAM``), with ``depth = 8 C / w``:

- ``area = A0 (C / C0) g(p) / g(p0)``;
- ``energy = E0 (d / d0)^0.78 (w / w0) sqrt(g(p) / g(p0))``;
- ``leakage = L0 (d / d0)^0.78 (w / w0) g(p) / g(p0)``;

where ``g(p) = (1 + port_growth (p - 1))^2``: every extra port adds a wordline and a
bitline pair, growing the cell's height and width by ``port_growth`` of its pitch (an
assumed 0.5 unless the reference says otherwise); the bitlines an access drives grow with
one dimension, hence the square root for energy.  The 0.78 exponent agrees with ISAAC's
own CACTI 6.5 (32 nm) register figures: 256 B 0.23 mW, 2 KB 1.24 mW, 3 KB 1.68 mW
(power exponents 0.81 and 0.75).

**Banks.**  These trends describe one array.  A memory larger than the reference's
``bank`` capacity ``Cb`` is ``n = C / Cb`` banks of that size (as CACTI splits a large
array into banks and subarrays rather than lengthen its bitlines): an access reads one bank
and moves its ``w`` bits over an H-tree whose root-to-leaf route is about the side of the
whole array, so

- ``energy = E_bank + e_wire w sqrt(area)`` (``e_wire`` per bit and mm: ``wire_energy``);
- ``leakage = n L_bank`` and ``area = n A_bank`` (every bank leaks; area stays linear).

Without ``bank`` the memory is one array at any size (the trend above, extrapolated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..description.spec import Adc, Memory, SramReference

#: CACTI's depth exponent for energy and leakage (hwcomponents.scaling, cacti_depth_energy)
CACTI_DEPTH_EXPONENT = 1.56 / 2

#: Saberi et al. SAR ADC at 32 nm, from hwcomponents-library isaac.py: bits -> (pJ, µm²)
SABERI_32NM = {4: (0.79, 361.04), 5: (0.99, 476.91), 6: (1.20, 626.91), 7: (1.42, 845.18),
               8: (1.67, 1200.0), 9: (1.969078145, 1827.911647), 10: (2.379022742, 3002.008032)}


@dataclass(frozen=True)
class AdcFigures:
    energy_j: float  # per conversion
    power_w: float  # at the ADC's sample rate
    area_mm2: float


def adc_scale(bits: int, reference_bits: int, scaling: str) -> tuple[float, float]:
    """Energy and area factors of a ``bits`` ADC relative to a ``reference_bits`` one."""
    if bits == reference_bits:
        return 1.0, 1.0
    if scaling == "isaac":
        factor = 2.0 ** (bits - reference_bits)
        return factor, factor
    low, high = min(SABERI_32NM), max(SABERI_32NM)
    for b in (bits, reference_bits):
        if not low <= b <= high:
            raise ValueError(f"the saberi ADC table covers {low} to {high} bits, got {b}")
    (e, a), (e0, a0) = SABERI_32NM[bits], SABERI_32NM[reference_bits]
    return e / e0, a / a0


def adc_figures(adc: Adc) -> AdcFigures:
    """Energy per conversion, power and area of one ADC (module docstring)."""
    base = adc.energy_j if adc.energy_j is not None else adc.power_w / adc.sample_rate_hz
    if adc.reference_bits is None:
        return AdcFigures(base, adc.power_w, adc.area_mm2)
    energy_factor, area_factor = adc_scale(adc.bits, adc.reference_bits, adc.scaling)
    energy = base * energy_factor
    return AdcFigures(energy, energy * adc.sample_rate_hz, adc.area_mm2 * area_factor)


@dataclass(frozen=True)
class SramFigures:
    area_mm2: float
    leakage_w: float
    energy_j: float  # per access of width bits


def port_factor(ports: int, growth: float) -> float:
    return (1.0 + growth * (ports - 1)) ** 2


def _monolithic(ref: SramReference, capacity_bytes: float, width_bits: int, ports: int
                ) -> SramFigures:
    depth = 8 * capacity_bytes / width_bits
    depth0 = 8 * ref.capacity_bytes / ref.width_bits
    depth_factor = (depth / depth0) ** CACTI_DEPTH_EXPONENT
    width_factor = width_bits / ref.width_bits
    ports_factor = port_factor(ports, ref.port_growth) / port_factor(ref.ports, ref.port_growth)
    return SramFigures(
        area_mm2=ref.area_mm2 * capacity_bytes / ref.capacity_bytes * ports_factor,
        leakage_w=ref.leakage_w * depth_factor * width_factor * ports_factor,
        energy_j=ref.energy_j * depth_factor * width_factor * math.sqrt(ports_factor),
    )


def sram_figures(ref: SramReference, capacity_bytes: float, width_bits: int, ports: int
                 ) -> SramFigures:
    """Area, leakage and energy per access of an SRAM scaled from ``ref`` (module
    docstring).  A memory larger than the reference's ``bank`` is ``C / bank`` banks: an
    access reads one bank and crosses the H-tree to it.  A zero capacity costs nothing."""
    if capacity_bytes <= 0:
        return SramFigures(0.0, 0.0, 0.0)
    bank = ref.bank_bytes
    if bank is None or capacity_bytes <= bank:
        return _monolithic(ref, capacity_bytes, width_bits, ports)
    one = _monolithic(ref, bank, width_bits, ports)
    banks = capacity_bytes / bank
    area = one.area_mm2 * banks
    return SramFigures(area_mm2=area, leakage_w=one.leakage_w * banks,
                       energy_j=one.energy_j + htree_energy_j(ref, area, width_bits))


def htree_energy_j(ref: SramReference, area_mm2: float, width_bits: int) -> float:
    """Energy of moving ``width_bits`` between a banked memory's port and one bank: an
    H-tree's root-to-leaf route is about the side of the array, ``sqrt(area)``."""
    return ref.wire_energy_j * width_bits * math.sqrt(area_mm2)


def memory_figures(mem: Memory, capacity_bytes: float | None = None) -> SramFigures | None:
    """Modeled figures of a memory with a ``reference`` (at ``capacity_bytes`` if given,
    else its own capacity); ``None`` for a memory costed by its YAML numbers."""
    if mem.reference is None:
        return None
    capacity = mem.capacity_bytes if capacity_bytes is None else capacity_bytes
    return sram_figures(mem.reference, capacity, mem.width_bits, mem.ports)

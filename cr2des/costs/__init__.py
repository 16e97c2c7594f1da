"""Count first, cost second: action counts per layer and scheme, cost models (ADC, SRAM),
energy, and the area/power table.
"""

"""Results: one run's record (JSON, CSV), the pipeline every run and sweep point shares, and
design-space sweeps.
"""

"""What CR2 compresses, and what it costs in time: crossbar mapping (weight patterns, WPC/WPR),
the input-pattern engine (IPR) and its profiles, the closed-form stage times, pattern-buffer
allocation, the analytic study that ties them together, its cache, and bit-exact
verification.
"""

"""Time, simulated: the on-chip network, the SimPy hardware components, the event
simulation of the pipelined chip, and its traces.
"""

# How the streams that measure the steady state stop (:class:`.sim.SimOptions`); here, so
# that the command line can show them without importing the simulation.

#: the stream's work budget, in output rows over all stage replicas (about 20 ResNet-50
#: images)
STREAM_ROWS = 45_000
#: precision (95 % confidence half-width relative to the mean) that ends a stream early
TOLERANCE = 0.02
#: most images a stream feeds
STREAM_IMAGES = 1000
#: most images a stream may be allowed to feed (its per-image bookkeeping is kept)
MAX_STREAM_IMAGES = 100_000
#: the largest row budget a stream may be given
MAX_STREAM_ROWS = 10**9
#: the loosest tolerance a stream may be given (a half-width of half the mean measures
#: nothing)
MAX_TOLERANCE = 0.5

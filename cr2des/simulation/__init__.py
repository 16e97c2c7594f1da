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

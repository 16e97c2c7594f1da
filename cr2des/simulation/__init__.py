"""Time, simulated: the on-chip network, the SimPy hardware components, the event
simulation of the pipelined chip, and its traces.
"""

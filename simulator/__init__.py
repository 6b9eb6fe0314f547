"""The outside world, simulated: meters, weather, grid prices, grid carbon intensity.

Deterministic for a seed, vectorised with numpy, served over HTTP on loopback in the
real services' formats. Used by `wattline demo`/`up` when no source URL is set, and by
the tests.
"""

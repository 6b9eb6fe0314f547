"""The outside world, simulated: meters, weather, grid prices, grid carbon intensity.

Deterministic for a seed, vectorised with numpy, served over HTTP on loopback in the
real services' formats. Used by `wattline demo`/`up` when no source URL is set, and by
the tests.

Modules: config (SimulatorConfig), fleet (cities, archetypes, build_fleet), loadshapes
(end-use demand, on-site supply), weather (temperature, irradiance, ...), readings
(ReadingGenerator, generate), prices, carbon, modes (peak/outage windows), faults
(injected errors, rate limits, slow, cut and malformed responses), noise (counter-based
hashing), csvformat (vectorised CSV text), params (query parsing, 400s), headend_api
/ weather_api / prices_api / carbon_api (routes), server (create_app, SimulatorServer),
__main__ (`python -m simulator`).
"""

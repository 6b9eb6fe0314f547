"""Counter-based randomness: a value is a hash of (seed, stream, key, time), never the
state of a generator, so any slice of time can be regenerated bit for bit."""

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser over uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def hash64(*keys) -> np.ndarray:
    """Combine integer keys (scalars or broadcastable arrays) into one uint64 hash."""
    h = np.uint64(0x243F6A8885A308D3)
    with np.errstate(over="ignore"):
        for key in keys:
            h = splitmix64(np.asarray(key).astype(np.uint64) ^ (h * np.uint64(31)))
    return h


def uniform(*keys) -> np.ndarray:
    """Uniform [0, 1) from the hash of the keys."""
    return (hash64(*keys) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def normal(*keys) -> np.ndarray:
    """Standard normal (Box–Muller) from the hash of the keys."""
    u1 = uniform(*keys, 1)
    u2 = uniform(*keys, 2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def smooth(t_s: np.ndarray, *keys, periods_days=(1.7, 2.9, 4.3, 7.1)) -> np.ndarray:
    """A smooth, zero-mean signal of unit variance over time (seconds), made of a few
    sinusoids with hashed phases: weather-like fronts lasting days."""
    t_days = np.asarray(t_s, dtype=np.float64) / 86400.0
    total = np.zeros_like(t_days)
    for i, period in enumerate(periods_days):
        phase = float(uniform(*keys, 100 + i)) * 2.0 * np.pi
        total += np.sin(2.0 * np.pi * t_days / period + phase)
    return total * np.sqrt(2.0 / len(periods_days))


def stable_id(text: str) -> int:
    """A stable integer for a string key (Python's hash() is salted per process)."""
    value = 1469598103934665603
    for byte in text.encode():
        value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return value

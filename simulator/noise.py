"""Counter-based randomness: a value is a hash of (seed, stream, key, time), never the
state of a generator, so any slice of time can be regenerated bit for bit."""

from functools import lru_cache

import numpy as np

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_U16 = np.uint64(0xFFFF)
# Two independent 16-bit uniforms summed, centred and scaled: a triangular variate of
# unit variance (the variance of one uniform on [0, 1) is 1/12).
_TRI_SCALE = np.sqrt(6.0) / 65536.0


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser over uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _GOLDEN
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


def grid_hash(row_keys: np.ndarray, column_keys: np.ndarray) -> np.ndarray:
    """One uint64 hash per (row, column) cell from per-row and per-column key hashes.

    The hot path of the readings: one splitmix round per cell instead of one per key,
    since each side is already a full-avalanche hash of its own keys.
    """
    return splitmix64(np.asarray(row_keys, dtype=np.uint64)[:, None] ^ np.asarray(column_keys, dtype=np.uint64)[None, :])


def triangular(h: np.ndarray, lane: int) -> np.ndarray:
    """A zero-mean, unit-variance noise value from 32 bits of a hash (lane 0 or 1).

    Bounded at ±√6, so a multiplicative noise of a few percent never flips a sign.
    """
    shift = np.uint64(32 * lane)
    a = (h >> shift) & _U16
    b = (h >> (shift + np.uint64(16))) & _U16
    return (a + b).astype(np.float64) * _TRI_SCALE - np.sqrt(6.0)


def lane16(h: np.ndarray, lane: int) -> np.ndarray:
    """16 bits of a hash (lane 0–3) as integers 0–65535."""
    return ((h >> np.uint64(16 * lane)) & _U16).astype(np.int64)


@lru_cache(maxsize=4096)
def _phases(keys: tuple, n: int) -> tuple[float, ...]:
    return tuple(float(uniform(*keys, 100 + i)) * 2.0 * np.pi for i in range(n))


def smooth(t_s: np.ndarray, *keys, periods_days=(1.7, 2.9, 4.3, 7.1)) -> np.ndarray:
    """A smooth, zero-mean signal of unit variance over time (seconds), made of a few
    sinusoids with hashed phases: weather-like fronts lasting days."""
    t_days = np.asarray(t_s, dtype=np.float64) / 86400.0
    total = np.zeros_like(t_days)
    phases = _phases(tuple(int(k) for k in keys), len(periods_days))
    for period, phase in zip(periods_days, phases, strict=True):
        total += np.sin(2.0 * np.pi * t_days / period + phase)
    return total * np.sqrt(2.0 / len(periods_days))


def stable_id(text: str) -> int:
    """A stable integer for a string key (Python's hash() is salted per process)."""
    value = 1469598103934665603
    for byte in text.encode():
        value = ((value ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return value

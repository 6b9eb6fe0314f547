"""Vectorised CSV formatting: numbers to ASCII digits with numpy, no Python per value.

Each field becomes an (N, width) byte matrix with 0 as padding; rows are joined with
commas and newlines and the padding squeezed out in one pass. This is what lets the
simulator serve millions of readings a second on one core.
"""

import numpy as np

COMMA = np.frombuffer(b",", dtype=np.uint8)
NEWLINE = np.frombuffer(b"\n", dtype=np.uint8)


def text_bytes(values: list[str]) -> np.ndarray:
    """A few strings (meter ids, timestamps) as a zero-padded byte matrix."""
    width = max((len(v) for v in values), default=1)
    return np.frombuffer(b"".join(v.encode().ljust(width, b"\0") for v in values), dtype=np.uint8).reshape(len(values), width)


def fixed_bytes(x: np.ndarray, decimals: int, int_digits: int = 7) -> np.ndarray:
    """Floats as fixed-point decimal text; NaN as `NaN`. Values beyond int_digits clip."""
    x = np.asarray(x, dtype=np.float64).ravel()
    n = x.size
    nan = np.isnan(x)
    scale = 10**decimals
    limit = 10**int_digits - 1
    magnitude = np.rint(np.minimum(np.abs(np.where(nan, 0.0, x)), limit) * scale).astype(np.int64)
    integer, fraction = np.divmod(magnitude, scale)
    negative = (x < 0) & (magnitude > 0)

    width = 1 + int_digits + (1 + decimals if decimals else 0)
    out = np.zeros((n, width), dtype=np.uint8)
    out[:, 0] = np.where(negative, ord("-"), 0)
    # Digits of the integer part, most significant first, leading zeros left as padding.
    remaining = integer.copy()
    for position in range(int_digits - 1, -1, -1):
        out[:, 1 + position] = remaining % 10 + 48
        remaining //= 10
    powers = 10 ** np.arange(1, int_digits, dtype=np.int64)
    digits_needed = np.searchsorted(powers, integer, side="right") + 1
    columns = np.arange(int_digits)
    out[:, 1 : 1 + int_digits][columns[None, :] < (int_digits - digits_needed)[:, None]] = 0
    if decimals:
        out[:, 1 + int_digits] = ord(".")
        remaining = fraction.copy()
        for position in range(decimals - 1, -1, -1):
            out[:, 2 + int_digits + position] = remaining % 10 + 48
            remaining //= 10
    if nan.any():
        out[nan] = 0
        out[nan, :3] = np.frombuffer(b"NaN", dtype=np.uint8)
    return out


def join_rows(fields: list[np.ndarray]) -> bytes:
    """Join per-field byte matrices (same row count) into CSV lines."""
    n = fields[0].shape[0]
    parts = []
    for i, field in enumerate(fields):
        parts.append(field)
        separator = NEWLINE if i == len(fields) - 1 else COMMA
        parts.append(np.broadcast_to(separator, (n, 1)))
    matrix = np.concatenate(parts, axis=1)
    flat = matrix.ravel()
    return flat[flat != 0].tobytes()

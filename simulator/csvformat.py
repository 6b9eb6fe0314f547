"""Vectorised CSV formatting: numbers to ASCII with numpy, no Python per value.

A row is laid out as 4-byte slots (uint32), each filled by one table lookup: digits
come three or four at a time from precomputed tables, text fields are copied whole. NUL bytes
pad what a value does not use (leading zeros, short strings); one pass at the end
squeezes them out. This is what lets the simulator format a million readings a second
on one core.
"""

import numpy as np

SLOT = 4  # bytes per slot


def _table(n_digits: int, template: str) -> np.ndarray:
    """Slot values for 0 … 10**n_digits - 1 written into a 4-character template, where
    'D' marks digit positions (most significant first) and NUL pads."""
    values = np.arange(10**n_digits)
    out = np.zeros((values.size, SLOT), dtype=np.uint8)
    digit_positions = [i for i, c in enumerate(template) if c == "D"]
    for i, c in enumerate(template):
        if c not in ("D", "\0"):
            out[:, i] = ord(c)
    remaining = values.copy()
    for position in reversed(digit_positions):
        out[:, position] = remaining % 10 + 48
        remaining //= 10
    return out.view("<u4").ravel()


def _blank_leading_zeros(table: np.ndarray, keep_last: bool) -> np.ndarray:
    """The same digits with leading zeros turned into padding; with keep_last, zero
    itself stays '0' (the units group), else it becomes empty (a higher group)."""
    digits = table.view(np.uint8).reshape(-1, SLOT)
    out = digits.copy()
    for position in range(SLOT - (1 if keep_last else 0)):
        out[(digits[:, : position + 1] == ord("0")).all(axis=1), position] = 0
    return out.view("<u4").ravel()


_FULL = _table(4, "DDDD")
# 4-digit groups below the top of an integer, indexed by group + 10_000 * (a higher
# digit was non-zero): the first non-zero group drops its leading zeros, later ones
# keep theirs. The units group keeps a lone '0'; a higher group of zeros vanishes.
_UNITS = np.concatenate([_blank_leading_zeros(_FULL, keep_last=True), _FULL])
_HIGHER = np.concatenate([_blank_leading_zeros(_FULL, keep_last=False), _FULL])


def _lead_table(lead: str, keep_last: bool) -> np.ndarray:
    """The separator then up to 3 digits without leading zeros: ',5', ',42', ',999';
    0 is ',0' with keep_last (the whole integer), else just ',' (digits follow)."""
    texts = [lead + (str(v) if v or keep_last else "") for v in range(1000)]
    return np.array([slot_value(t.encode()) for t in texts], dtype="<u4")


def slot_value(text: bytes) -> int:
    """A (≤ 4 byte) literal as one slot value."""
    return int.from_bytes(text.ljust(SLOT, b"\0")[:SLOT], "little")


class NumberFormat:
    """Fixed-point decimal text for floats, each preceded by a separator: `,12.345`.

    `decimals` places; NaN (and ±inf) is written `NaN`; negatives get a '-'. The separator shares
    a slot with the top three integer digits, and only as many further 4-digit slots
    are used as the largest value of the batch needs: the width adapts to the data and
    nothing ever clips.
    """

    def __init__(self, decimals: int, lead: str = ","):
        self.decimals = decimals
        self.scale = 10.0**decimals
        self.lead = lead
        self.lead_units = _lead_table(lead, keep_last=True)  # when it is the whole integer
        self.lead_higher = _lead_table(lead, keep_last=False)
        chars = "." + "D" * decimals if decimals else ""
        chars += "\0" * (-len(chars) % SLOT)
        # Per slot: (divisor, modulus or None, table).
        self.fraction_slots = []
        done = 0
        for offset in range(0, len(chars), SLOT):
            template = chars[offset : offset + SLOT]
            n_digits = template.count("D")
            modulus = 10**n_digits if done else None  # the leading digits need no modulus
            done += n_digits
            self.fraction_slots.append((10 ** (decimals - done), modulus, _table(n_digits, template)))

    def slots(self, x: np.ndarray) -> np.ndarray:
        """(n, slots) uint32 for a 1-D float array."""
        x = np.asarray(x, dtype=np.float64).ravel()
        nan = ~np.isfinite(x)  # infinities too: there is no digit table for them
        has_nan = bool(nan.any())
        if has_nan:
            x = np.where(nan, 0.0, x)
        magnitude = np.rint(np.abs(x) * self.scale)
        negative = (x < 0) & (magnitude > 0)
        has_sign = bool(negative.any())
        # Exact in float64: magnitudes are integers far below 2**53.
        integer = np.floor(magnitude / self.scale)
        fraction = (magnitude - integer * self.scale).astype(np.int64)
        integer = integer.astype(np.int64)
        top = int(integer.max()) if integer.size else 0
        # Without a sign the top three digits ride in the separator's slot; with one,
        # the separator and sign take it and the digits follow in 4-digit groups.
        reach = 1 if has_sign else 1000
        groups = 1 if has_sign else 0
        while top >= reach * 10_000**groups:
            groups += 1
        n_integer = 1 + groups
        out = np.empty((x.size, n_integer + len(self.fraction_slots)), dtype=np.uint32)
        started = np.zeros(x.size, dtype=np.int64)
        if has_sign:
            out[:, 0] = np.where(negative, slot_value((self.lead + "-").encode()), slot_value(self.lead.encode()))
        else:
            top_digits = integer // 10_000**groups if groups else integer
            out[:, 0] = (self.lead_higher if groups else self.lead_units).take(top_digits)
            if groups:
                started = np.where(top_digits > 0, 10_000, 0)
        for g in range(groups - 1, -1, -1):
            group = (integer // 10_000**g) % 10_000 if g else integer % 10_000
            out[:, n_integer - 1 - g] = (_HIGHER if g else _UNITS).take(group + started)
            if g:
                started = np.where(group > 0, 10_000, started)
        column = n_integer
        for divisor, modulus, table in self.fraction_slots:
            digits = fraction // divisor if divisor > 1 else fraction
            out[:, column] = table.take(digits % modulus if modulus else digits)
            column += 1
        if has_nan:
            out[nan] = 0
            out[nan, 0] = slot_value((self.lead + "NaN").encode())
        return out


def text_slots(values: list[str], prefix: str = "", suffix: str = "") -> np.ndarray:
    """Strings (ids, timestamps) between a prefix and a suffix, as (n, slots) uint32,
    NUL-padded to the longest."""
    encoded = [(prefix + v + suffix).encode() for v in values]
    width = max((len(e) for e in encoded), default=0)
    width += -width % SLOT
    raw = b"".join(e.ljust(width, b"\0") for e in encoded)
    return np.frombuffer(raw, dtype="<u4").reshape(len(values), width // SLOT).copy()


def squeeze(rows: np.ndarray) -> bytes:
    """The text of a uint32 slot matrix with its NUL padding removed."""
    flat = np.ascontiguousarray(rows).view(np.uint8).ravel()
    # Boolean indexing beats np.compress here by 2x (it does not build an index array).
    return flat[flat != 0].tobytes()

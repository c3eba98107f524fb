"""Data-quality (DQ) bits, as DRAGONS defines them (uint16 bit mask).

DQ planes are combined with bitwise OR, never summed.
"""
import numpy as np

__all__ = ["GOOD", "BAD_PIXEL", "NON_LINEAR", "SATURATED", "COSMIC_RAY", "NO_DATA",
           "OVERLAP", "UNILLUMINATED", "FAIL", "NOT_SIGNAL", "BITS", "DTYPE", "describe"]

DTYPE = np.uint16
GOOD = 0
BAD_PIXEL = 1
NON_LINEAR = 2
SATURATED = 4
COSMIC_RAY = 8
NO_DATA = 16
OVERLAP = 32
UNILLUMINATED = 64
#: Pixels that carry no usable signal for stacking and photometry.
FAIL = BAD_PIXEL | SATURATED | COSMIC_RAY | NO_DATA
#: Everything except the "still signal" bits (non-linear, saturated).
NOT_SIGNAL = 65535 ^ (NON_LINEAR | SATURATED)

#: Bit value -> name, for readouts and legends.
BITS = {BAD_PIXEL: "bad_pixel", NON_LINEAR: "non_linear", SATURATED: "saturated",
        COSMIC_RAY: "cosmic_ray", NO_DATA: "no_data", OVERLAP: "overlap",
        UNILLUMINATED: "unilluminated"}


def describe(value: int) -> list:
    """Names of the bits set in one DQ value (``[]`` for a good pixel)."""
    return [name for bit, name in BITS.items() if int(value) & bit]

"""Quantities users and admins write: cores and memory sizes.

Memory follows KubeSpawner's ``ByteSpecification`` (K, M, G, T are powers of
1024), so that "8G" means the same here as in ``mem_limit``; the explicit
binary suffixes Ki, Mi, Gi, Ti are accepted as synonyms.
"""

from __future__ import annotations

import math
import re

_MEMORY_UNITS = {
    "": 1,
    "K": 2**10,
    "M": 2**20,
    "G": 2**30,
    "T": 2**40,
}
_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)\s*$")


class QuantityError(ValueError):
    """A number or size that cannot be understood."""


#: The largest number a user or admin may write (cores, counts, gigabytes):
#: far above any machine, far below what a float or int conversion chokes on
#: (``10**400`` would otherwise raise OverflowError deep in the arithmetic).
MAX_NUMBER = 10**15
#: The largest memory size in bytes (1024 P): the same idea for sizes.
MAX_MEMORY = 2**60


def _too_large(what: str) -> QuantityError:
    return QuantityError(f"{what} is too large")


def parse_memory(value: object) -> int:
    """Return a memory size in bytes from ``8G``, ``512M``, ``1.5T``, ``8Gi`` or an int.

    >>> parse_memory("8G")
    8589934592
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a memory size")
    if isinstance(value, int):
        if value > MAX_MEMORY:
            raise _too_large("Memory")
        if value <= 0:
            raise QuantityError(f"{_quote(value)} is not a positive memory size")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or value <= 0:
            raise QuantityError(f"{_quote(value)} is not a positive memory size")
        if value > MAX_MEMORY:
            raise _too_large("Memory")
        return int(value)
    if not isinstance(value, str):
        raise QuantityError(f"{value!r} is not a memory size")
    match = _MEMORY_RE.match(value)
    if not match or (match.group(3) and not match.group(2)):
        raise QuantityError(f"{_quote(value)} is not a memory size; write a number with K, M, G or T (e.g. 32G)")
    number, unit, _ = match.groups()
    amount = float(number)  # a string of digits: at worst inf, never OverflowError
    if not math.isfinite(amount) or amount * _MEMORY_UNITS[unit] > MAX_MEMORY:
        raise _too_large("Memory")
    size = int(amount * _MEMORY_UNITS[unit])
    if size <= 0:
        raise QuantityError(f"{_quote(value)} is not a positive memory size")
    return size


def format_memory(size: int) -> str:
    """Render bytes the way admins write them: ``34359738368`` -> ``32G``."""
    for unit in ("T", "G", "M", "K"):
        scale = _MEMORY_UNITS[unit]
        if size < scale:
            continue
        if size % scale == 0:
            return f"{size // scale}{unit}"
        if (size * 10) % scale == 0:
            return f"{size * 10 // scale / 10:g}{unit}"
    return str(size)


def parse_number(value: object, what: str) -> float:
    """Parse a user-supplied number that may arrive as a string (form data)."""
    if isinstance(value, bool):
        raise QuantityError(f"{what} must be a number, not {value!r}")
    if isinstance(value, int):
        # float() of a huge int raises OverflowError: compare as ints first.
        if abs(value) > MAX_NUMBER:
            raise _too_large(what)
        number = float(value)
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"\d+(\.\d+)?", text):
            raise QuantityError(f"{what} must be a number, not {_quote(value)}")
        number = float(text)
    else:
        raise QuantityError(f"{what} must be a number, not {_quote(value)}")
    if not math.isfinite(number):
        raise QuantityError(f"{what} must be a finite number")
    if abs(number) > MAX_NUMBER:
        raise _too_large(what)
    return number


def parse_count(value: object, what: str) -> int:
    """Parse a whole, non-negative count (accelerators)."""
    number = parse_number(value, what)
    if number != int(number) or number < 0:
        raise QuantityError(f"{what} must be a whole number, not {_quote(value)}")
    return int(number)


def format_cores(cores: float) -> str:
    amount = f"{cores:g}"
    return f"{amount} core" if cores == 1 else f"{amount} cores"


def _quote(value: object) -> str:
    """Quote user text for a message, cut short so a message stays readable."""
    text = str(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return repr(text)

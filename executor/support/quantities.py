"""Kubernetes resource quantities (`500m`, `1`, `128Mi`, `1e3`) as exact numbers, to compare a
request with its limit the way the API server does (resource.Quantity.Cmp)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# The serialised form of resource.Quantity (staging/src/k8s.io/apimachinery/pkg/api/resource).
# Also the job config schema's pattern (config/fields.py): keep it to what JSON Schema's regular
# expressions (ECMA 262) read alike.
QUANTITY_TEXT = r"[+]?(\d+(?:\.\d*)?|\.\d+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?"
_QUANTITY = re.compile(f"^{QUANTITY_TEXT}$")
_SUFFIXES = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(text: str) -> Decimal:
    """The quantity's value; ValueError when the text is not a quantity."""
    found = _QUANTITY.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    try:
        number = Decimal(found[1])
        suffix = found[2] or ""
        if suffix[:1] in ("e", "E"):
            return number * Decimal(10) ** int(suffix[1:])
        return number * _SUFFIXES[suffix]
    except (InvalidOperation, OverflowError):
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from None

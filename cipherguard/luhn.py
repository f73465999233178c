"""The Luhn checksum (ISO/IEC 7812) that card numbers carry. No Django import.

The log filter (``cipherguard.logs``) recognises card numbers by it and the card vault
(``fraud.transactions.cards``) refuses numbers that fail it: one definition for both."""

from __future__ import annotations


def luhn_valid(pan: str) -> bool:
    """Whether a string of ASCII digits passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(pan)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0

"""Where a request key falls in [0, 1): the stable hash behind every traffic split."""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["bucket"]

_SCALE = 1.0 / 2**64


def bucket(key: str, salt: str = "") -> float:
    """A key's position in [0, 1), the same on every host and every run.

    The first 8 bytes of BLAKE2b of ``salt`` and ``key`` (separated by a NUL
    so that ``("ab", "c")`` and ``("a", "bc")`` differ) read as an unsigned
    integer and scaled to [0, 1). A split sends a key to the challenger when
    its position is below the challenger's fraction, so a key keeps its route
    while the fraction holds, and raising the fraction only moves keys from
    champion to challenger. Python's ``hash()`` would change with every
    process (``PYTHONHASHSEED``), so it cannot be used.

    Examples
    --------
    >>> bucket("user-42", salt="voice_intent|7")
    0.6206211166185658
    >>> bucket("user-42", salt="voice_intent|7") == bucket("user-42", salt="voice_intent|7")
    True
    >>> positions = [bucket(f"user-{i}") for i in range(10_000)]
    >>> round(sum(p < 0.05 for p in positions) / len(positions), 2)
    0.05
    """
    digest = blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") * _SCALE

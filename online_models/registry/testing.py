"""Test doubles for the registry: an in-memory Redis, and a publisher that can be killed.

:class:`InMemoryRedis` answers the handful of Redis commands the registry uses,
with redis-py's return types (bytes, ints), so unit tests and doctests need no
server. Integration tests use the real Redis instead.

``python -m online_models.registry.testing REDIS_URL NAMESPACE MODEL SECRET``
publishes one version of MODEL (a small pickled dict) with alias ``champion``
and prints its version number. When ``DRIFTLOOP_REGISTRY_CRASH_AT`` names one of
:data:`~online_models.registry.registry.PUBLISH_STEPS`, the process kills itself
with SIGKILL at that step, as a power cut would: no cleanup, no ``finally``.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys
from collections.abc import Callable, Mapping

__all__ = ["CRASH_ENV", "InMemoryRedis", "kill_at"]

#: The environment variable that names the publish step to die at.
CRASH_ENV = "DRIFTLOOP_REGISTRY_CRASH_AT"

_Value = bytes | dict[bytes, bytes] | set[bytes]


def _b(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value).encode()
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"cannot store {type(value).__name__} in Redis: encode it first")


class InMemoryRedis:
    """The subset of ``redis.Redis`` the registry uses, kept in a dict (no server).

    Examples
    --------
    >>> r = InMemoryRedis()
    >>> r.incr("n"), r.incr("n"), r.get("n")
    (1, 2, b'2')
    >>> r.hset("h", mapping={"a": 1, "b": "x"}), r.hgetall("h")
    (2, {b'a': b'1', b'b': b'x'})
    >>> r.zadd("z", {"3": 3, "1": 1}), r.zrange("z", 0, -1)
    (2, [b'1', b'3'])
    """

    def __init__(self) -> None:
        self._data: dict[bytes, _Value] = {}
        # scores are kept beside the members of a sorted set
        self._scores: dict[bytes, dict[bytes, float]] = {}

    def _typed(self, name: str | bytes, kind: type) -> _Value | None:
        value = self._data.get(_b(name))
        if value is not None and not isinstance(value, kind):
            raise TypeError("WRONGTYPE Operation against a key holding the wrong kind of value")
        return value

    # strings
    def get(self, name: str | bytes) -> bytes | None:
        """GET."""
        return self._typed(name, bytes)  # type: ignore[return-value]

    def set(self, name: str | bytes, value: object) -> bool:
        """SET."""
        self._scores.pop(_b(name), None)
        self._data[_b(name)] = _b(value)
        return True

    def incr(self, name: str | bytes, amount: int = 1) -> int:
        """INCR / INCRBY."""
        value = int(self.get(name) or b"0") + amount
        self._data[_b(name)] = str(value).encode()
        return value

    # hashes
    def hset(
        self,
        name: str | bytes,
        key: object = None,
        value: object = None,
        mapping: Mapping[object, object] | None = None,
    ) -> int:
        """HSET; returns how many fields were new."""
        fields = dict(mapping or {})
        if key is not None:
            fields[key] = value
        table = self._typed(name, dict)
        if table is None:
            table = self._data[_b(name)] = {}
        added = 0
        for field, field_value in fields.items():
            added += _b(field) not in table
            table[_b(field)] = _b(field_value)  # type: ignore[index]
        return added

    def hget(self, name: str | bytes, key: object) -> bytes | None:
        """HGET."""
        return (self._typed(name, dict) or {}).get(_b(key))  # type: ignore[union-attr]

    def hgetall(self, name: str | bytes) -> dict[bytes, bytes]:
        """HGETALL."""
        return dict(self._typed(name, dict) or {})  # type: ignore[arg-type]

    def hdel(self, name: str | bytes, *keys: object) -> int:
        """HDEL; the hash disappears with its last field, as in Redis."""
        table = self._typed(name, dict)
        if table is None:
            return 0
        removed = sum(table.pop(_b(k), None) is not None for k in keys)  # type: ignore[union-attr]
        if not table:
            del self._data[_b(name)]
        return removed

    # sets
    def sadd(self, name: str | bytes, *values: object) -> int:
        """SADD."""
        members = self._typed(name, set)
        if members is None:
            members = self._data[_b(name)] = set()
        before = len(members)
        members.update(_b(v) for v in values)  # type: ignore[union-attr]
        return len(members) - before

    def smembers(self, name: str | bytes) -> set[bytes]:
        """SMEMBERS."""
        return set(self._typed(name, set) or ())  # type: ignore[arg-type]

    # sorted sets: a set of members in _data, their scores in _scores
    def zadd(self, name: str | bytes, mapping: Mapping[object, float]) -> int:
        """ZADD; returns how many members were new."""
        added = self.sadd(name, *mapping)
        scores = self._scores.setdefault(_b(name), {})
        scores.update({_b(m): float(s) for m, s in mapping.items()})
        return added

    def zscore(self, name: str | bytes, value: object) -> float | None:
        """ZSCORE."""
        return self._scores.get(_b(name), {}).get(_b(value))

    def zrange(self, name: str | bytes, start: int, end: int) -> list[bytes]:
        """ZRANGE by rank, members ordered by score then bytes."""
        scores = self._scores.get(_b(name), {})
        ordered = sorted(scores, key=lambda m: (scores[m], m))
        stop = None if end == -1 else end + 1
        return ordered[start:stop]

    # keys
    def exists(self, *names: str | bytes) -> int:
        """EXISTS: how many of ``names`` exist."""
        return sum(_b(n) in self._data for n in names)

    def delete(self, *names: str | bytes) -> int:
        """DEL."""
        removed = 0
        for name in names:
            self._scores.pop(_b(name), None)
            removed += self._data.pop(_b(name), None) is not None
        return removed

    def scan_iter(self, match: str = "*") -> list[bytes]:
        """The keys matching a glob pattern."""
        return [k for k in self._data if fnmatch.fnmatchcase(k.decode(), match)]


def kill_at(step: str | None) -> Callable[[str], None]:
    """An ``on_step`` hook that SIGKILLs this process when the publish reaches ``step``.

    Examples
    --------
    >>> hook = kill_at(None)  # never kills
    >>> hook("after_blob") is None
    True
    """

    def hook(reached: str) -> None:
        if step is not None and reached == step:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def _publish_main(argv: list[str]) -> int:
    import redis

    from online_models.registry.registry import PUBLISH_STEPS, ModelRegistry
    from online_models.registry.version import VersionMetadata

    redis_url, namespace, model, secret = argv
    step = os.environ.get(CRASH_ENV) or None
    if step is not None and step not in PUBLISH_STEPS:
        print(f"{CRASH_ENV}={step!r} is not a publish step; steps: {', '.join(PUBLISH_STEPS)}")
        return 2
    registry = ModelRegistry(
        redis.Redis.from_url(redis_url), secret.encode(), namespace, on_step=kill_at(step)
    )
    info = registry.register_version(
        model,
        {"published_by": os.getpid()},
        VersionMetadata(description="published by the crash-test entry point"),
        alias="champion",
    )
    print(info.version)
    return 0


if __name__ == "__main__":
    raise SystemExit(_publish_main(sys.argv[1:]))

"""The SDK picks the same partition as Kafka's default partitioner (murmur2)."""

from __future__ import annotations

import pytest

from producers.publisher import partition_for_key

# Golden values computed with the real Java client, kafka-clients 4.1.1:
#   Utils.toPositive(Utils.murmur2(key.getBytes(StandardCharsets.UTF_8))) % n
# (org.apache.kafka.common.utils.Utils), i.e. what the default partitioner does for a keyed
# record. They come from the Java implementation, not from the code under test.
GOLDEN = [
    ("req-1", 3, 4),
    ("req-2", 1, 5),
    ("req-3", 0, 5),
    ("r0", 0, 5),
    ("r1", 0, 0),
    ("voice-7f3a", 0, 4),
    ("", 1, 2),
    ("é-unicode", 2, 3),
]


@pytest.mark.parametrize(("key", "on_4", "on_7"), GOLDEN)
def test_partition_matches_the_java_client(key: str, on_4: int, on_7: int) -> None:
    assert partition_for_key(key, 4) == on_4
    assert partition_for_key(key, 7) == on_7

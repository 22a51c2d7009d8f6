"""online_models: everything learned or measured online, Kafka-free and unit-testable.

The streaming monitor's statistical core is re-exported here: the window
aggregate (:class:`WindowMetrics` and its column batches) and event-time
windowing (:class:`TumblingWindows`, :class:`Watermark`,
:class:`PanedRollingWindow`). The mergeable summaries they are built from live
in :mod:`online_models.stats`.
"""

from online_models.window import PanedRollingWindow, TumblingWindows, Watermark
from online_models.window_metrics import OutcomeBatch, PredictionBatch, WindowMetrics

__all__ = [
    "OutcomeBatch",
    "PanedRollingWindow",
    "PredictionBatch",
    "TumblingWindows",
    "Watermark",
    "WindowMetrics",
]

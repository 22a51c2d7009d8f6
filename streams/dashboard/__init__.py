"""The live web dashboard: per-model metric charts, alerts, detector state and rollout.

:class:`DashboardState` folds metrics, alert and model events into what the
page shows (pure, bounded memory); :class:`DashboardService` follows the topics
and serves the page, its JSON and live updates; charts are chosen by name from
:data:`CHARTS`.
"""

from streams.dashboard.chart import CHARTS, DEFAULT_CHARTS, Chart, get_chart, register_chart
from streams.dashboard.exceptions import DashboardConfigError, DashboardError, UnknownChartError
from streams.dashboard.feed import FeedBatch, TopicFeed
from streams.dashboard.service import DashboardService, page_html
from streams.dashboard.state import DashboardState

__all__ = [
    "CHARTS",
    "DEFAULT_CHARTS",
    "Chart",
    "DashboardConfigError",
    "DashboardError",
    "DashboardService",
    "DashboardState",
    "FeedBatch",
    "TopicFeed",
    "UnknownChartError",
    "get_chart",
    "page_html",
    "register_chart",
]

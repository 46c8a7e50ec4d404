"""Monitors: the checker programs that run over the log and record ``finding`` entries.

A run (``run_monitors``) reads every deployment as one role sees it
(``glasslog.oversight.views.load_views``) and runs each monitor of the
registry ``MONITORS`` over each (deployment, model) pair:

- ``performance`` (``performance.py``): realised against claimed accuracy and ROC AUC, and calibration;
- ``drift`` (``drift.py``): outputs and the inputs the role sees, reference window against current;
- ``disparity`` (``disparity.py``): selection and error rates per protected group;
- ``goodhart`` (``goodhart.py``): a reported proxy improving while realised accuracy falls;
- ``anomalies`` (``anomalies.py``): gaps, bursts, out-of-order and future timestamps.

Every monitor keeps one contract (``common.Monitor``); the settings are in
``config``, the run and its recording in ``run``, the statistics in
``glasslog.stats``. How each monitor decides, with its sources, is
in ``docs/monitors.md``.
"""

from ...findings import Finding
from .anomalies import check_anomalies
from .common import FOUR_FIFTHS, Monitor, RunContext
from .config import MonitorConfig, MonitorConfigError, check_settings
from .disparity import check_disparity
from .drift import check_drift, compare_feature, compare_frames, flag_drift
from .goodhart import check_goodhart
from .performance import check_performance
from .registry import MONITORS
from .run import MonitorRun, list_findings, monitor_views, run_monitors

__all__ = [
    "MONITORS",
    "Monitor",
    "RunContext",
    "MonitorConfig",
    "MonitorConfigError",
    "Finding",
    "MonitorRun",
    "run_monitors",
    "monitor_views",
    "check_performance",
    "check_drift",
    "check_disparity",
    "check_goodhart",
    "check_anomalies",
    "compare_feature",
    "compare_frames",
    "flag_drift",
    "FOUR_FIFTHS",
    "list_findings",
    "check_settings",
]

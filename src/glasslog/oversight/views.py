"""What a monitor sees: a deployment's decisions, outcomes and reported metrics, read
from the log into columnar arrays through the access policy.

A monitor runs *as a role* and sees exactly what that role may see
(``glasslog.access.policy``):

| role       | deployments        | times, counts | outputs, outcomes | inputs                                   |
|------------|--------------------|---------------|-------------------|------------------------------------------|
| public     | all                | yes           | public-service only | no                                     |
| developer  | all                | yes           | public-service and granted ones | no                         |
| researcher | all                | yes           | all               | pseudonymised (``policy.input_view``)    |
| supervisor | all                | yes           | all               | all                                      |
| operator   | all                | yes           | all               | all                                      |

Times and counts of every decision are public (every entry is), so log
anomalies can be checked by anyone. Everything is read from the log's
columnar copy (``glasslog.storage.columnar``: decoded decisions, outputs,
inputs and outcomes per deployment, built from the log on first use and
scrubbed by erasure); what a role may see is decided here, through the
policy: outputs and outcomes by ``policy.sees_outputs``, input features by
``policy.input_view`` (the features a role may see depend only on the role
and the card, so the filter is decided once per deployment). Subjects'
identifiers are never read.

Speed: a million decisions with 20 features, their outputs and 600,000
outcomes are read as arrays in about a second (BENCHMARKS.md, "Monitors");
``ColumnCursor`` keeps what a run read, so the next run of ``monitor run
--every`` reads only the chunks added since.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..access.policy import MONITOR_ROLES, input_view
from ..access.policy import sees_outputs as policy_sees_outputs
from ..errors import BadInputError
from ..ledger import Ledger
from ..registry import Deployments, ModelCard, Registry
from ..stats.labels import positive_class, positive_index
from ..storage import columnar as C

__all__ = ["MONITOR_ROLES", "MonitorViewError", "DeploymentData", "MetricReport", "ColumnCursor", "load_views", "parse_times"]


class MonitorViewError(BadInputError):
    """A monitor was asked to run as an unknown role, or for an unknown deployment."""


@dataclass
class MetricReport:
    """One ``metric`` entry: a figure the deployer reports (e.g. a proxy such as a satisfaction score).

    Attributes:
        index: entry index.
        time: RFC 3339 time of the entry.
        name: the metric's name.
        value: its value.
        start, end: the period it covers (RFC 3339), from the entry's ``window``
            (``start`` / ``end``) when given; else ``None``.
        better: ``"higher"`` (default) or ``"lower"``: which direction the deployer counts as improvement.
    """

    index: int
    time: str
    name: str
    value: float
    start: str | None
    end: str | None
    better: str = "higher"


@dataclass
class DeploymentData:
    """One (deployment, model) pair as a role sees it; arrays are aligned, one row per decision, in log order.

    Attributes:
        deployment, visibility, model: as on the log.
        card: the model's card (None if the model is not registered on this log).
        role: the role the view was made for.
        sees_outputs: outputs and outcomes are visible to this role.
        sees_inputs: some input features are visible to this role.
        index: int64 (n,), decision entry indexes.
        time: datetime64[us] (n,), decision times (UTC, NaT if unparsable).
        label: object (n,), output labels, or None when outputs are not visible.
        predicted: float64 (n,), 1.0 where the label is the card's positive
            class, 0.0 where it is another class, NaN where unknown; None when not visible.
        score: float64 (n,), probability of the positive class (NaN where the
            output has none); None when not visible.
        outcome: float64 (n,), 1.0 = the positive class happened, 0.0 = it did
            not, NaN = no outcome (yet); the latest outcome of a decision
            counts. None when not visible.
        outcome_time: datetime64[us] (n,), time of the latest outcome entry (NaT if none); outcome
            times are public, so every role gets them.
        outcomes_unreadable: outcomes that were not one of the card's classes (counted, not used).
        inputs: DataFrame (n rows x visible features; numeric features float64
            with NaN for missing or invalid values, categorical ones object),
            or None when the role sees no inputs.
        input_available: bool (n,), the decision's inputs are beside the log (not erased); None without inputs.
        invalid: per numeric feature, rows whose value was present but not a number.
        withheld: features the role may not see.
        metrics: the deployer's ``metric`` entries for this deployment and model.
        classes: output classes (card's ``output.classes``, else as seen).
        positive: the positive class (``glasslog.stats.labels.positive_class``: the card's ``output.positive``,
            else the second of two classes, else 1).
    """

    deployment: str
    visibility: str
    model: str
    card: ModelCard | None
    role: str
    sees_outputs: bool
    sees_inputs: bool
    index: np.ndarray
    time: np.ndarray
    label: np.ndarray | None = None
    predicted: np.ndarray | None = None
    score: np.ndarray | None = None
    outcome: np.ndarray | None = None
    outcome_time: np.ndarray | None = None
    outcomes_unreadable: int = 0
    inputs: pd.DataFrame | None = None
    input_available: np.ndarray | None = None
    invalid: dict[str, np.ndarray] = field(default_factory=dict)
    withheld: list[str] = field(default_factory=list)
    metrics: list[MetricReport] = field(default_factory=list)
    classes: list = field(default_factory=list)
    positive: Any = 1

    @property
    def n(self) -> int:
        """Number of decisions."""
        return len(self.index)


def parse_times(values: list[str]) -> np.ndarray:
    """RFC 3339 UTC strings (``...Z``) to datetime64[us] (n,); unparsable ones become NaT."""
    if not values:
        return np.array([], dtype="datetime64[us]")
    parsed = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True, errors="coerce")
    return parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[us]")


def _numeric_column(values: list | tuple | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 column (NaN for missing) and a bool mask of values present but not numbers.

    Fast path: numpy converts the whole sequence (numbers, ``None`` -> NaN, and
    strings that spell a number, which count as numbers); anything it cannot
    convert sends the column down the per-value path.
    """
    try:
        return np.array(values, dtype=float), np.zeros(len(values), dtype=bool)
    except (TypeError, ValueError):
        pass
    obj = pd.Series(np.asarray(values, dtype=object))
    arr = np.array(pd.to_numeric(obj, errors="coerce").to_numpy(dtype=float), copy=True)
    is_bool = obj.map(lambda v: isinstance(v, (bool, list, dict))).to_numpy(dtype=bool)
    arr[is_bool] = np.nan
    invalid = obj.notna().to_numpy(dtype=bool) & np.isnan(arr)
    return arr, invalid


class ColumnCursor:
    """What one ``monitor run --every`` loop has read of the log's columnar copy, so the next run reads only the
    chunks added since (``load_views(..., cursor=...)``).

    Attributes:
        columns: the chunks read so far (``storage.columnar.Columns``), or None before the first run.
        origin: the log they came from.
        rows_read: decision and outcome rows the last run read from storage (all of them on a first run, or
            after an erasure scrubbed the copy: then everything is read again).
    """

    def __init__(self) -> None:
        self.columns: C.Columns | None = None
        self.origin: str | None = None
        self.rows_read = 0

    def read(self, ledger: Ledger) -> C.Columns:
        """The columnar copy up to the log's size: the cached chunks plus those added since, or all of it again
        if the log changed, or an erasure scrubbed the copy since the last read."""
        store = ledger.store
        C.refresh(store)
        cols = self.columns
        _, erasures = store.columnar.state()
        if cols is not None and self.origin == ledger.origin and cols.erasures == erasures:
            more = C.read(store, since=cols.upto, refresh_first=False)
            if more.erasures == erasures:
                cols.extend(more)
                self.rows_read = more.rows_read
                return cols
        cols = C.read(store, refresh_first=False)
        self.columns, self.origin, self.rows_read = cols, ledger.origin, cols.rows_read
        return cols


def load_views(
    ledger: Ledger,
    role: str,
    *,
    deployments: Iterable[str] | None = None,
    granted: Iterable[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
    cursor: ColumnCursor | None = None,
) -> list[DeploymentData]:
    """Read every (deployment, model) pair on the log as ``role`` sees it.

    Args:
        ledger: the log.
        role: one of ``MONITOR_ROLES``.
        deployments: only these deployments (default: all declared or used on the log).
        granted: for a developer, the deployments its key is granted.
        progress: optional ``progress(stage, done, total)`` callback.
        cursor: keeps the chunks read between calls (``monitor run --every``): only new ones are read.

    Returns:
        One ``DeploymentData`` per (deployment, model) pair with at least one
        decision, in order of first decision.

    Raises:
        MonitorViewError: unknown role, or a named deployment with no decisions on the log.
        glasslog.storage.StorageError: the back end failed, or holds a damaged column.
    """
    if role not in MONITOR_ROLES:
        raise MonitorViewError(f"role must be one of {', '.join(MONITOR_ROLES)}, got {role!r}")
    wanted = None if deployments is None else set(deployments)
    granted = tuple(granted)
    if progress:
        progress("reading columns", 0, 1)
    cols = (cursor or ColumnCursor()).read(ledger)
    if progress:
        progress("reading columns", 1, 1)
    cards = {m.fingerprint: m.card for m in Registry(ledger).list()}
    declared = {d.name: d for d in Deployments(ledger).list()}
    classes_of: dict[str, tuple[list, Any]] = {fp: positive_class(card.output) for fp, card in cards.items()}
    positions = {fp: positive_index(c, pos) for fp, (c, pos) in classes_of.items()}

    groups = []
    for grp, chunks in cols.groups.items():
        if not C.is_decision_group(grp) or not chunks:
            continue
        dep, model = C.split_group(grp)
        if wanted is None or dep in wanted:
            groups.append((int(chunks[0].cols["index"].data[0]), dep, model, chunks))
    groups.sort(key=lambda g: g[0])  # order of first decision
    if wanted is not None:
        missing = sorted(wanted - {g[1] for g in groups})
        if missing:
            raise MonitorViewError(f"deployment {missing[0]!r} has no decisions on log {ledger.origin}")
    outcomes = _Outcomes(cols.groups.get("o", []))
    metrics = [(int(i), m) for chunk in cols.groups.get("m", []) for i, m in chunk.cols["json"].data]

    views: list[DeploymentData] = []
    for _, dep, model, chunks in groups:
        d = declared.get(dep)
        committed = C.plain(chunks, "committed", bool, False)
        private_output = bool(committed.any())
        visibility = d.visibility if d is not None else ("private" if private_output else "public-service")
        card = cards.get(model)
        classes, positive = classes_of.get(model, ([], 1))
        sees_outputs = policy_sees_outputs(role, dep, visibility == "public-service", granted)
        index = C.plain(chunks, "index", np.int64, 0)
        time = C.plain(chunks, "time", np.int64, C.NAT).view("datetime64[us]")
        view = DeploymentData(dep, visibility, model, card, role, sees_outputs, False, index, time,
                              classes=classes, positive=positive)
        allowed: list[str] = []
        if card is not None:
            shown = input_view(role, {f.name: None for f in card.features}, card)
            if shown is not None:
                allowed = [f.name for f in card.features if f.name in shown]
                view.withheld = [f.name for f in card.features if f.name not in shown]
        view.sees_inputs = bool(allowed)
        if sees_outputs:
            labels = C.as_objects(chunks, "label")
            proba = C.matrix(chunks, "proba")
            pos = positions.get(model)
            view.label = labels
            view.score = proba[:, pos].copy() if pos is not None and pos < proba.shape[1] else np.full(view.n, np.nan)
            view.predicted = np.where(pd.isna(labels), np.nan, (labels == positive).astype(float))
        if allowed:
            _attach_inputs(view, chunks, allowed)
        outcomes.attach(view, classes, positive)
        view.metrics = _metrics_for(metrics, dep, model)
        views.append(view)
        if progress:
            progress("building views", len(views), len(groups))
    return views


def _attach_inputs(view: DeploymentData, chunks: list, allowed: list[str]) -> None:
    """The visible input columns (numeric features float64 with their invalid masks, others object)."""
    types = {f.name: f.type for f in view.card.features} if view.card is not None else {}
    frame = {}
    for name in allowed:
        if types.get(name) == "numeric":
            arr, bad = C.as_float(chunks, "in:" + name, _numeric_column)
            frame[name] = arr
            if bad.any():
                view.invalid[name] = bad
        else:
            frame[name] = C.as_objects(chunks, "in:" + name)
    view.inputs = pd.DataFrame(frame, index=pd.RangeIndex(view.n))
    view.input_available = C.plain(chunks, "input.available", bool, False)


class _Outcomes:
    """Outcome rows of the columnar copy; the latest outcome of each decision, sorted by decision."""

    def __init__(self, chunks: list) -> None:
        dec = C.plain(chunks, "decision", np.int64, 0)
        if len(dec):
            _, first_from_end = np.unique(dec[::-1], return_index=True)
            keep = len(dec) - 1 - first_from_end  # the latest outcome entry of each decision, sorted by decision
        else:
            keep = np.array([], dtype=np.int64)
        self.dec = dec[keep]
        self.t = C.plain(chunks, "time", np.int64, C.NAT)[keep].view("datetime64[us]")
        self.have = C.plain(chunks, "have", bool, False)[keep]
        self.val = C.as_objects(chunks, "value")[keep] if len(keep) else np.array([], dtype=object)

    def attach(self, view: DeploymentData, classes: list, positive: Any) -> None:
        """Outcome times (public, in every outcome entry) always; outcome values only when the role sees outputs."""
        n = view.n
        view.outcome_time = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
        if not len(self.dec) or not n:
            if view.sees_outputs:
                view.outcome = np.full(n, np.nan)
            return
        at = np.searchsorted(self.dec, view.index)
        hit = self.dec[np.minimum(at, len(self.dec) - 1)] == view.index
        rows = np.nonzero(hit)[0]
        k = at[hit]
        view.outcome_time[rows] = self.t[k]
        if not view.sees_outputs:
            return
        have = self.have[k]
        v = pd.Series(self.val[k][have], dtype=object)
        readable = v.isin(classes).to_numpy(dtype=bool) if classes else v.notna().to_numpy(dtype=bool)
        y = np.full(n, np.nan)
        target = rows[have]
        y[target[readable]] = np.where((v[readable] == positive).to_numpy(dtype=bool), 1.0, 0.0)
        view.outcome = y
        view.outcomes_unreadable = int((~readable).sum())


def _metrics_for(metrics: list[tuple[int, dict]], deployment: str, model: str) -> list[MetricReport]:
    out = []
    for idx, m in metrics:
        if m.get("deployment") != deployment or m.get("model") != model:
            continue
        window = m.get("window") if isinstance(m.get("window"), dict) else {}
        better = m.get("better", window.get("better", "higher"))
        out.append(MetricReport(idx, m["time"], m["name"], float(m["value"]),
                                window.get("start") if isinstance(window.get("start"), str) else None,
                                window.get("end") if isinstance(window.get("end"), str) else None,
                                "lower" if better == "lower" else "higher"))
    return out

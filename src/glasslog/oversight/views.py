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
anomalies can be checked by anyone; outputs and outcomes of private
deployments are opened from the private values beside the log
(``Ledger.private_values_for``), and inputs likewise, filtered per role by
``policy.input_view``. Subjects' identifiers are never read.

Speed: one pass over the entries (``Ledger.typed_entries``), each parsed
with orjson; private values read in chunks of ``CHUNK`` decisions and
turned into one typed column per feature (float64 for numeric features,
object for categorical ones). About a million decisions with 20 features
load in seconds (see BENCHMARKS.md, "Monitors").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd

from ..access.policy import input_view
from ..ledger import Ledger
from ..registry import Deployments, ModelCard, Registry

__all__ = ["MONITOR_ROLES", "CHUNK", "MonitorViewError", "DeploymentData", "MetricReport", "load_views", "parse_times"]

MONITOR_ROLES = ("public", "developer", "researcher", "supervisor", "operator")
"""Roles a monitor can run as (a subject's view is one decision, not a deployment)."""

CHUNK = 20_000
"""Decisions whose private values are read and parsed at a time."""

_OPEN_ALL = ("researcher", "supervisor", "operator")


class MonitorViewError(ValueError):
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
        positive: the positive class (card's ``output.positive``, else 1).
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


def _sees_outputs(role: str, deployment: str, public: bool, granted: Iterable[str]) -> bool:
    if public or role in _OPEN_ALL:
        return True
    return role == "developer" and deployment in set(granted)


def _positive_of(card: ModelCard | None) -> tuple[list, Any]:
    output = card.output if card is not None and isinstance(card.output, dict) else {}
    classes = list(output.get("classes") or [])
    positive = output.get("positive", 1 if (not classes or 1 in classes) else classes[-1])
    return classes, positive


class _Collector:
    __slots__ = ("index", "time", "label", "score", "private_output")

    def __init__(self) -> None:
        self.index: list[int] = []
        self.time: list[str] = []
        self.label: list[Any] = []
        self.score: list[float] = []
        self.private_output = False


def _score_of(output: Any, pos: int | None) -> float:
    if isinstance(output, dict):
        proba = output.get("proba")
        if pos is not None and isinstance(proba, list) and pos < len(proba):
            p = proba[pos]
            if isinstance(p, (int, float)) and not isinstance(p, bool):
                return float(p)
    return float("nan")


def _label_of(output: Any) -> Any:
    return output.get("label") if isinstance(output, dict) else None


def _numeric_column(values: list) -> tuple[np.ndarray, np.ndarray]:
    """float64 column (NaN for missing) and a bool mask of values present but not numbers.

    Fast path: numpy converts the whole list (numbers, ``None`` -> NaN, and
    strings that spell a number, which count as numbers); anything it cannot
    convert sends the column down the per-value path.
    """
    try:
        return np.array(values, dtype=float), np.zeros(len(values), dtype=bool)
    except (TypeError, ValueError):
        pass
    obj = pd.Series(values, dtype=object)
    arr = np.array(pd.to_numeric(obj, errors="coerce").to_numpy(dtype=float), copy=True)
    is_bool = obj.map(lambda v: isinstance(v, (bool, list, dict))).to_numpy(dtype=bool)
    arr[is_bool] = np.nan
    invalid = obj.notna().to_numpy(dtype=bool) & np.isnan(arr)
    return arr, invalid


def load_views(
    ledger: Ledger,
    role: str,
    *,
    deployments: Iterable[str] | None = None,
    granted: Iterable[str] = (),
    progress: Callable[[str, int, int], None] | None = None,
) -> list[DeploymentData]:
    """Read every (deployment, model) pair on the log as ``role`` sees it.

    Args:
        ledger: the log.
        role: one of ``MONITOR_ROLES``.
        deployments: only these deployments (default: all declared or used on the log).
        granted: for a developer, the deployments its key is granted.
        progress: optional ``progress(stage, done, total)`` callback.

    Returns:
        One ``DeploymentData`` per (deployment, model) pair with at least one
        decision, in order of first decision.

    Raises:
        MonitorViewError: unknown role, or a named deployment with no decisions on the log.
    """
    if role not in MONITOR_ROLES:
        raise MonitorViewError(f"role must be one of {', '.join(MONITOR_ROLES)}, got {role!r}")
    wanted = None if deployments is None else set(deployments)
    granted = tuple(granted)
    cards = {m.fingerprint: m.card for m in Registry(ledger).list()}
    declared = {d.name: d for d in Deployments(ledger).list()}
    positives: dict[str, tuple[list, Any, int | None]] = {}
    for fp, card in cards.items():
        classes, positive = _positive_of(card)
        positives[fp] = (classes, positive, classes.index(positive) if positive in classes else None)
    default_positive = ([], 1, 1)

    groups: dict[tuple[str, str], _Collector] = {}
    outcomes: dict[int, tuple[int, str, Any, bool]] = {}  # decision -> (outcome index, time, value or None, committed)
    metrics: list[tuple[int, dict]] = []
    loads = orjson.loads
    size = ledger.size
    for idx, kind, data in ledger.typed_entries():
        if kind == "decision":
            d = loads(data)
            dep = d.get("deployment")
            if wanted is not None and dep not in wanted:
                continue
            key = (dep, d.get("model"))
            c = groups.get(key)
            if c is None:
                c = groups[key] = _Collector()
            c.index.append(idx)
            c.time.append(d.get("time"))
            out = d.get("output")
            if out is None:
                c.private_output = True
                c.label.append(None)
                c.score.append(float("nan"))
            else:
                c.label.append(_label_of(out))
                c.score.append(_score_of(out, positives.get(key[1], default_positive)[2]))
        elif kind == "outcome":
            o = loads(data)
            committed = "outcome" not in o
            outcomes[o["decision"]] = (idx, o.get("time"), None if committed else o["outcome"], committed)
        elif kind == "metric":
            metrics.append((idx, loads(data)))
        if progress and idx % 100_000 == 0:
            progress("reading entries", idx, size)
    if progress:
        progress("reading entries", size, size)
    if wanted is not None:
        missing = sorted(w for w in wanted if not any(k[0] == w for k in groups))
        if missing:
            raise MonitorViewError(f"deployment {missing[0]!r} has no decisions on log {ledger.origin}")

    views: list[DeploymentData] = []
    for (dep, model), c in sorted(groups.items(), key=lambda kv: kv[1].index[0]):
        d = declared.get(dep)
        visibility = d.visibility if d is not None else ("private" if c.private_output else "public-service")
        public = visibility == "public-service"
        card = cards.get(model)
        classes, positive, pos_index = positives.get(model, default_positive)
        sees_outputs = _sees_outputs(role, dep, public, granted)
        index = np.array(c.index, dtype=np.int64)
        view = DeploymentData(dep, visibility, model, card, role, sees_outputs, False, index, parse_times(c.time),
                              classes=classes, positive=positive)
        allowed: list[str] = []
        if card is not None:
            shown = input_view(role, {f.name: None for f in card.features}, card)
            if shown is not None:
                allowed = [f.name for f in card.features if f.name in shown]
                view.withheld = [f.name for f in card.features if f.name not in shown]
        view.sees_inputs = bool(allowed)
        need_private_outputs = sees_outputs and c.private_output
        labels, scores = c.label, c.score
        columns: dict[str, list] = {name: [] for name in allowed}
        available: list[bool] = []
        if need_private_outputs or allowed:
            labels, scores = list(labels), list(scores)
            for start in range(0, len(c.index), CHUNK):
                part = c.index[start : start + CHUNK]
                opened = ledger.private_values_for(part)
                rows = []
                for pos, i in enumerate(part, start):
                    kinds = opened.get(i, {})
                    if need_private_outputs and "output" in kinds:
                        out = loads(kinds["output"][2])
                        labels[pos] = _label_of(out)
                        scores[pos] = _score_of(out, pos_index)
                    if allowed:
                        value = kinds.get("input")
                        row = loads(value[2]) if value is not None else None
                        rows.append(row if isinstance(row, dict) else {})
                        available.append(value is not None)
                for name in allowed:
                    columns[name].extend([r.get(name) for r in rows])
                if progress:
                    progress(f"opening private values of {dep}", min(start + CHUNK, len(c.index)), len(c.index))
        if sees_outputs:
            view.label = np.array(labels, dtype=object)
            view.score = np.array(scores, dtype=float)
            view.predicted = np.where(pd.isna(view.label), np.nan, (view.label == positive).astype(float))
        _attach_outcomes(ledger, view, outcomes, classes, positive)
        if allowed:
            frame = {}
            types = {f.name: f.type for f in card.features}
            for name in allowed:
                if types[name] == "numeric":
                    arr, bad = _numeric_column(columns[name])
                    frame[name] = arr
                    if bad.any():
                        view.invalid[name] = bad
                else:
                    frame[name] = np.array(columns[name], dtype=object)
                columns[name] = []
            view.inputs = pd.DataFrame(frame, index=pd.RangeIndex(len(index)))
            view.input_available = np.array(available, dtype=bool)
        view.metrics = _metrics_for(metrics, dep, model)
        views.append(view)
    return views


def _attach_outcomes(ledger: Ledger, view: DeploymentData, outcomes: dict, classes: list, positive: Any) -> None:
    """Outcome times (public, in every outcome entry) always; outcome values only when the role sees outputs."""
    n = view.n
    times: list[str] = [""] * n
    committed: list[tuple[int, int]] = []  # (row, outcome index)
    values: list[tuple[int, Any]] = []
    for pos, i in enumerate(view.index.tolist()):
        o = outcomes.get(i)
        if o is None:
            continue
        times[pos] = o[1]
        if o[3]:
            committed.append((pos, o[0]))
        else:
            values.append((pos, o[2]))
    view.outcome_time = parse_times(times) if n else np.array([], "datetime64[us]")
    if not view.sees_outputs:
        return
    for start in range(0, len(committed), CHUNK):
        part = committed[start : start + CHUNK]
        opened = ledger.private_values_for([oi for _, oi in part])
        for pos, oi in part:
            v = opened.get(oi, {}).get("outcome")
            if v is not None:
                values.append((pos, orjson.loads(v[2])))
    y = np.full(n, np.nan)
    unreadable = 0
    for pos, value in values:
        if isinstance(value, bool):
            value = int(value)
        if classes and value not in classes:
            unreadable += 1
            continue
        y[pos] = 1.0 if value == positive else 0.0
    view.outcome = y
    view.outcomes_unreadable = unreadable


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

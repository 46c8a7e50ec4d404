"""Today's (before the columnar copy) way the monitors read the log, kept as the baseline of bench/monitors.py and
of the test that the columnar path gives the same views (tests/test_monitor_columnar.py).

``load_views_legacy(ledger, role, ...)`` is ``glasslog.oversight.views.load_views`` as it was at commit 6475a0f:
one pass over the entries with orjson, private values read in chunks of ``CHUNK`` decisions and turned into
one typed column per feature. Not used by glasslog itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import orjson
import pandas as pd

from glasslog.access.policy import MONITOR_ROLES, input_view
from glasslog.access.policy import sees_outputs as policy_sees_outputs
from glasslog.ledger import Ledger
from glasslog.oversight.views import DeploymentData, MonitorViewError, _metrics_for, _numeric_column, parse_times
from glasslog.registry import Deployments, Registry
from glasslog.stats.labels import positive_class, positive_index

CHUNK = 20_000


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


def _parse_many(values: list[bytes]) -> list:
    """Parse JSON texts with orjson (one call each: faster than one call on them joined as an array); None if malformed."""
    loads = orjson.loads
    try:
        return [loads(v) for v in values]
    except (orjson.JSONDecodeError, TypeError):
        out = []
        for v in values:
            try:
                out.append(loads(v))
            except (orjson.JSONDecodeError, TypeError):
                out.append(None)
        return out


def _columns(rows: list[dict], names: list[str]) -> list[list]:
    """One list of values per feature from the input dicts (missing keys give None)."""
    out = []
    for name in names:
        try:
            out.append([r[name] for r in rows])
        except KeyError:
            out.append([r.get(name) for r in rows])
    return out


def _outputs_of(outs: list, pos: int | None) -> tuple[list, np.ndarray]:
    """Labels (list) and positive-class probabilities (float64, NaN where absent) of parsed outputs.

    Fast path when every output is ``{"label": ..., "proba": [k floats]}``; otherwise one by one.
    """
    if pos is not None and outs:
        try:
            labels = [o["label"] for o in outs]
            proba = np.array([o["proba"] for o in outs], dtype=float)
            if proba.ndim == 2 and proba.shape[1] > pos:
                return labels, proba[:, pos].copy()
        except (KeyError, TypeError, ValueError):
            pass
    return [_label_of(o) for o in outs], np.array([_score_of(o, pos) for o in outs], dtype=float)


def _object_array(values: list) -> np.ndarray:
    """A 1-D object array of exactly these values (lists stay elements, not a second dimension)."""
    return np.fromiter(values, dtype=object, count=len(values))




class _Decisions:
    """Decision entries read in one pass, as compact parallel lists."""

    def __init__(self) -> None:
        self.index: list[int] = []
        self.key: list[str] = []  # deployment + NUL + model
        self.time: list[str] = []
        self.label: list[Any] = []  # public outputs (None where committed)
        self.score: list[float] = []
        self.committed: list[bool] = []

    def add(self, indexes: list[int], data: list[bytes], wanted: set | None, positions: dict[str, int | None]) -> None:
        objs = _parse_many(data)
        pairs = [(i, o) for i, o in zip(indexes, objs) if isinstance(o, dict)
                 and (wanted is None or o.get("deployment") in wanted)]
        if not pairs:
            return
        self.index.extend(i for i, _ in pairs)
        objs = [o for _, o in pairs]
        self.key.extend(f"{o.get('deployment')}\x00{o.get('model')}" for o in objs)
        self.time.extend(o.get("time") for o in objs)
        outs = [o.get("output") for o in objs]
        self.committed.extend(out is None for out in outs)
        public = [k for k, out in enumerate(outs) if out is not None]
        if not public:
            self.label.extend([None] * len(outs))
            self.score.extend([_NAN] * len(outs))
            return
        models = {objs[k].get("model") for k in public}
        if len(public) == len(outs) and len({positions.get(m) for m in models}) == 1:
            labels, scores = _outputs_of(outs, positions.get(next(iter(models))))
            self.label.extend(labels)
            self.score.extend(scores.tolist())
            return
        self.label.extend(out.get("label") if isinstance(out, dict) else None for out in outs)
        self.score.extend(_NAN if out is None else _score_of(out, positions.get(o.get("model"))) for o, out in zip(objs, outs))


_NAN = float("nan")
_READ_BATCH = 50_000


def load_views_legacy(
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
    classes_of: dict[str, tuple[list, Any]] = {fp: positive_class(card.output) for fp, card in cards.items()}
    positions = {fp: positive_index(c, pos) for fp, (c, pos) in classes_of.items()}

    decisions = _Decisions()
    outcomes = _Outcomes()
    metrics: list[tuple[int, dict]] = []
    batch_idx: list[int] = []
    batch_data: list[bytes] = []
    out_idx: list[int] = []
    out_data: list[bytes] = []
    size = ledger.size

    def flush_outcomes() -> None:
        outcomes.add(out_idx, out_data)
        out_idx.clear()
        out_data.clear()

    for idx, kind, data in ledger.typed_entries():
        if kind == "decision":
            batch_idx.append(idx)
            batch_data.append(data)
            if len(batch_idx) >= _READ_BATCH:
                decisions.add(batch_idx, batch_data, wanted, positions)
                batch_idx, batch_data = [], []
                if progress:
                    progress("reading entries", idx, size)
        elif kind == "outcome":
            out_idx.append(idx)
            out_data.append(data)
            if len(out_idx) >= _READ_BATCH:
                flush_outcomes()
        elif kind == "metric":
            metrics.append((idx, orjson.loads(data)))
    decisions.add(batch_idx, batch_data, wanted, positions)
    flush_outcomes()
    outcomes.finish()
    if progress:
        progress("reading entries", size, size)

    keys = np.array(decisions.key, dtype=object)
    codes, uniques = pd.factorize(keys) if len(keys) else (np.array([], dtype=np.int64), [])
    all_index = np.array(decisions.index, dtype=np.int64)
    if wanted is not None:
        found = {u.split("\x00", 1)[0] for u in uniques}
        missing = sorted(wanted - found)
        if missing:
            raise MonitorViewError(f"deployment {missing[0]!r} has no decisions on log {ledger.origin}")
    times_all = parse_times(decisions.time)
    label_all = np.array(decisions.label, dtype=object)
    score_all = np.array(decisions.score, dtype=float)
    committed_all = np.array(decisions.committed, dtype=bool)
    del decisions

    views: list[DeploymentData] = []
    for g, key in enumerate(uniques):  # factorize keeps the order of first appearance
        rows = np.nonzero(codes == g)[0]
        dep, model = key.split("\x00", 1)
        d = declared.get(dep)
        private_output = bool(committed_all[rows].any())
        visibility = d.visibility if d is not None else ("private" if private_output else "public-service")
        card = cards.get(model)
        classes, positive = classes_of.get(model, ([], 1))
        sees_outputs = policy_sees_outputs(role, dep, visibility == "public-service", granted)
        index = all_index[rows]
        view = DeploymentData(dep, visibility, model, card, role, sees_outputs, False, index, times_all[rows],
                              classes=classes, positive=positive)
        allowed: list[str] = []
        if card is not None:
            shown = input_view(role, {f.name: None for f in card.features}, card)
            if shown is not None:
                allowed = [f.name for f in card.features if f.name in shown]
                view.withheld = [f.name for f in card.features if f.name not in shown]
        view.sees_inputs = bool(allowed)
        labels, scores = label_all[rows], score_all[rows]
        need_outputs = sees_outputs and private_output
        if need_outputs or allowed:
            labels, scores = labels.copy(), scores.copy()
            _open_decisions(ledger, view, allowed, need_outputs, labels, scores, positions.get(model), progress)
        if sees_outputs:
            view.label = labels
            view.score = scores
            view.predicted = np.where(pd.isna(labels), np.nan, (labels == positive).astype(float))
        _attach_outcomes(ledger, view, outcomes, classes, positive)
        view.metrics = _metrics_for(metrics, dep, model)
        views.append(view)
    return views


def _open_decisions(ledger: Ledger, view: DeploymentData, allowed: list[str], need_outputs: bool, labels: np.ndarray,
                    scores: np.ndarray, pos_index: int | None, progress: Callable | None) -> None:
    """Fill outputs (private deployments) and the visible input columns from the private values beside the log.

    One range read per chunk of decisions (inputs and outputs together), values
    parsed with orjson, each feature turned into a typed column per chunk.
    """
    n = view.n
    kinds = (["input"] if allowed else []) + (["output"] if need_outputs else [])
    types = {f.name: f.type for f in view.card.features} if view.card is not None else {}
    parts: dict[str, list[np.ndarray]] = {name: [] for name in allowed}
    bad_parts: dict[str, list[tuple[int, np.ndarray]]] = {name: [] for name in allowed}
    available = np.zeros(n, dtype=bool)
    index = view.index
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        size = stop - start
        chunk_index = index[start:stop]
        rows = list(ledger.private_values_between(int(chunk_index[0]), int(chunk_index[-1]) + 1, kinds))
        if rows:
            found_idx, found_kind, found_val = zip(*rows)
            idx = np.array(found_idx, dtype=np.int64)
            at = np.searchsorted(chunk_index, idx)
            mine = chunk_index[np.minimum(at, size - 1)] == idx  # the range may hold other deployments' entries
            kind_arr = np.array(found_kind, dtype=object)
            vals = _object_array(list(found_val))
        else:
            at = mine = kind_arr = vals = np.array([], dtype=object)
        if need_outputs and len(at):
            sel = mine & (kind_arr == "output")
            if sel.any():
                out_labels, out_scores = _outputs_of(_parse_many(vals[sel].tolist()), pos_index)
                pos = at[sel] + start
                labels[pos] = _object_array(out_labels)
                scores[pos] = out_scores
        if not allowed:
            if progress:
                progress(f"opening private values of {view.deployment}", stop, n)
            continue
        sel = mine & (kind_arr == "input") if len(at) else np.array([], dtype=bool)
        local = at[sel] if len(at) else np.array([], dtype=np.int64)
        parsed = _parse_many(vals[sel].tolist()) if len(at) else []
        inputs = [r if isinstance(r, dict) else {} for r in parsed]
        available[local + start] = True
        contiguous = len(local) == size  # every decision of the chunk has its inputs (the usual case)
        for name, col in zip(allowed, _columns(inputs, allowed)):
            if types.get(name) == "numeric":
                arr, bad = _numeric_column(col)
                if not contiguous:
                    full = np.full(size, np.nan)
                    full[local] = arr
                    arr = full
                    bad_full = np.zeros(size, dtype=bool)
                    bad_full[local] = bad
                    bad = bad_full
                if bad.any():
                    bad_parts[name].append((start, bad))
            else:
                arr = _object_array(col)
                if not contiguous:
                    full = np.full(size, None, dtype=object)
                    full[local] = arr
                    arr = full
            parts[name].append(arr)
        if progress:
            progress(f"opening private values of {view.deployment}", stop, n)
    if not allowed:
        return
    frame = {}
    for name in allowed:
        frame[name] = np.concatenate(parts[name]) if parts[name] else np.array([], dtype=object)
        parts[name] = []
        if bad_parts[name]:
            mask = np.zeros(n, dtype=bool)
            for at0, bad in bad_parts[name]:
                mask[at0 : at0 + len(bad)] = bad
            view.invalid[name] = mask
    view.inputs = pd.DataFrame(frame, index=pd.RangeIndex(n))
    view.input_available = available


class _Outcomes:
    """Outcome entries read in one pass; after ``finish``, the latest outcome of each decision, sorted by decision."""

    def __init__(self) -> None:
        self.decision: list[int] = []
        self.index: list[int] = []
        self.time: list[str] = []
        self.value: list[Any] = []
        self.committed: list[bool] = []

    def add(self, indexes: list[int], data: list[bytes]) -> None:
        for i, o in zip(indexes, _parse_many(data)):
            if isinstance(o, dict) and type(o.get("decision")) is int:
                committed = "outcome" not in o
                self.decision.append(o["decision"])
                self.index.append(i)
                self.time.append(o.get("time") or "")
                self.value.append(None if committed else o["outcome"])
                self.committed.append(committed)

    def finish(self) -> None:
        dec = np.array(self.decision, dtype=np.int64)
        if len(dec):
            _, first_from_end = np.unique(dec[::-1], return_index=True)
            keep = len(dec) - 1 - first_from_end  # the latest outcome entry of each decision, sorted by decision
        else:
            keep = np.array([], dtype=np.int64)
        self.dec = dec[keep]
        self.idx = np.array(self.index, dtype=np.int64)[keep]
        self.t = parse_times([self.time[k] for k in keep.tolist()])
        self.val = _object_array([self.value[k] for k in keep.tolist()])
        self.comm = np.array(self.committed, dtype=bool)[keep]
        self.decision = self.index = self.time = self.value = self.committed = []


def _attach_outcomes(ledger: Ledger, view: DeploymentData, outcomes: _Outcomes, classes: list, positive: Any) -> None:
    """Outcome times (public, in every outcome entry) always; outcome values only when the role sees outputs."""
    n = view.n
    view.outcome_time = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    if not len(outcomes.dec) or not n:
        if view.sees_outputs:
            view.outcome = np.full(n, np.nan)
        return
    at = np.searchsorted(outcomes.dec, view.index)
    hit = outcomes.dec[np.minimum(at, len(outcomes.dec) - 1)] == view.index
    rows = np.nonzero(hit)[0]
    k = at[hit]
    view.outcome_time[rows] = outcomes.t[k]
    if not view.sees_outputs:
        return
    values = outcomes.val[k].copy()
    committed = outcomes.comm[k]
    have = ~committed
    if committed.any():
        c_rows = np.nonzero(committed)[0]
        c_idx = outcomes.idx[k][c_rows]
        order = np.argsort(c_idx, kind="stable")
        c_rows, c_idx = c_rows[order], c_idx[order]
        for start in range(0, len(c_idx), CHUNK):
            part = c_idx[start : start + CHUNK]
            found = list(ledger.private_values_between(int(part[0]), int(part[-1]) + 1, ["outcome"]))
            if not found:
                continue
            f_idx = np.array([f[0] for f in found], dtype=np.int64)
            where = np.searchsorted(part, f_idx)
            mine = part[np.minimum(where, len(part) - 1)] == f_idx
            sel = c_rows[start + where[mine]]
            values[sel] = _object_array(_parse_many([f[2] for f, m in zip(found, mine.tolist()) if m]))
            have[sel] = True
    v = pd.Series(values[have], dtype=object)
    readable = v.isin(classes).to_numpy(dtype=bool) if classes else v.notna().to_numpy(dtype=bool)
    y = np.full(n, np.nan)
    target = rows[have]
    y[target[readable]] = np.where((v[readable] == positive).to_numpy(dtype=bool), 1.0, 0.0)
    view.outcome = y
    view.outcomes_unreadable = int((~readable).sum())

"""Replay: recompute logged decisions from the registered weights and the stored inputs.

For every decision entry (optionally of one model or deployment) this
opens the input commitment (and, for private deployments, the output
commitment) with the stored values and salts, loads the
registered artifact (checked against its fingerprint), recomputes the
output, and compares: labels must be equal exactly, probabilities within
``tolerance`` (absolute, default 1e-9; JSON round-trips floats exactly, so
any larger difference means different weights, code or inputs).
Each decision is recomputed in the batch it was logged in (the run of
consecutive decision entries of one model and deployment with one time,
which is how a batch is written), and, for batches of more than one row, up
to ``alone_per_batch`` of its decisions (spread over it) also alone: a model
whose output for a row changes with the rest of its batch
(e.g. standardising with the batch's mean) lets one person's data move
another's decision. That disagreement is reported as a leakage signal
(``batch_dependent``), separately from mismatches against the log.
Decisions whose inputs or outputs were erased are counted, not failed, when
the erasure is on the log (an ``erasure`` entry naming the commitment); a
value erased beside the log with no such entry is a failure
(``unlogged_erasures``); a private value missing without a recorded
erasure, or one that does not open its commitment, is a failure naming the
entry field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..ledger import Ledger
from ..ledger.commitments import check_commitment
from ..registry import ArtifactError, Registry, RegistryError, UntrustedTypesError

__all__ = ["DEFAULT_TOLERANCE", "REPLAY_CHECK", "ReplayReport", "replay", "replay_verdict", "replay_finding"]

DEFAULT_TOLERANCE = 1e-9
"""Largest absolute difference accepted between a logged and a recomputed probability."""
REPLAY_CHECK = "replay.weights"
"""The ``check`` name of the findings recording replays (``replay_finding``)."""


@dataclass
class ReplayReport:
    """Result of ``replay``.

    Attributes:
        ok: every checked decision matched and no commitment failed.
        checked: decisions recomputed.
        matched: decisions whose recomputed output equals the logged one.
        erased: decisions skipped because their inputs or outputs were lawfully erased.
        missing: ``{"index", "field"}`` of private values missing with no recorded erasure.
        mismatches: ``{"index", "logged", "recomputed"}`` for each mismatch (first 100).
        commitment_failures: ``{"index", "field"}`` whose stored value does not open the logged commitment.
        unchecked: decisions that could not be checked (missing values, failed commitments, unloadable models).
        max_abs_diff: largest probability difference seen.
        errors: models that could not be loaded, with the reason.
        encoder_checked: decisions that name a foundation encoder (recomputed
            as embeddings + head, compared within ``encoder_tolerance``).
        batches: logged batches recomputed (each as one model call, as it was logged).
        alone_checked: decisions of multi-row batches recomputed alone.
        batch_dependent: decisions whose output recomputed alone differs from
            the one recomputed in their logged batch: the leakage signal.
        batch_dependent_examples: ``{"index", "in_batch", "alone", "batch_size"}`` (first 100).
        unlogged_erasures: ``{"index", "field"}`` of values marked erased beside the log with no ``erasure``
            entry on the log for their commitment (a deletion passed off as an erasure).
        not_checked: ``{"model", "types", "recorded"}`` of models not loaded because they need skops types
            the caller did not trust (``recorded``: the types recorded with the registration). Their
            decisions were not checked: that is not a failure (``ok`` is unaffected), but not a pass either.
        self_reported: decisions an application reported (``source``, e.g. OTLP embeddings): there are no
            weights-produced outputs to recompute, so they are not checked; not a failure (``ok`` is unaffected).
    """

    ok: bool = True
    checked: int = 0
    matched: int = 0
    erased: int = 0
    mismatch_count: int = 0
    mismatches: list[dict] = field(default_factory=list)
    commitment_failures: list[dict] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)
    total: int = 0
    max_abs_diff: float = 0.0
    tolerance: float = DEFAULT_TOLERANCE
    errors: list[str] = field(default_factory=list)
    encoder_checked: int = 0
    encoder_tolerance: float | None = None
    batches: int = 0
    alone_checked: int = 0
    batch_dependent: int = 0
    batch_dependent_examples: list[dict] = field(default_factory=list)
    not_checked: list[dict] = field(default_factory=list)
    unlogged_erasures: list[dict] = field(default_factory=list)
    self_reported: int = 0

    def to_dict(self) -> dict:
        return vars(self).copy()


def replay(
    ledger: Ledger,
    *,
    model: str | None = None,
    deployment: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    encoder_tolerance: float | None = None,
    batch_size: int = 5000,
    progress: Callable[[int, int], None] | None = None,
    trusted: Sequence[str] = (),
    alone: bool = True,
    trust_recorded: bool = False,
    alone_per_batch: int = 10,
) -> ReplayReport:
    """Replay logged decisions against the registered weights (see module docstring).

    Args:
        ledger: the log (with its private values and artifacts).
        model: only decisions of this model fingerprint (or built on this foundation model).
        deployment: only decisions of this deployment.
        tolerance: absolute tolerance for probabilities.
        encoder_tolerance: absolute tolerance for decisions that name a
            foundation encoder (default ``glasslog.capture.encoder.ENCODER_TOLERANCE``:
            transformer inference moves low bits with batch shape).
        batch_size: decisions read per step (whole logged batches; each logged batch is one model call).
        alone: also recompute decisions of multi-row batches on their own (the batch-dependence check).
        alone_per_batch: how many decisions of each batch are recomputed alone (spread over the batch, first and
            last included; 0 or less: all). A model whose output depends on its batch changes most rows, so a
            few per batch find it without one model call per decision.
        progress: called as ``progress(done, total)``.
        trusted: extra skops types to trust (see ``glasslog.registry.load_artifact``).
        trust_recorded: also trust the types recorded with each model's registration.
    """
    report = ReplayReport(tolerance=tolerance)
    registry = Registry(ledger)
    decisions = [(i, d) for i, d in ledger.entries_of_type("decision")
                 if (model is None or d["model"] == model or d.get("foundation") == model)
                 and (deployment is None or d["deployment"] == deployment)]
    report.self_reported = sum(1 for _, d in decisions if d.get("source") is not None)
    decisions = [(i, d) for i, d in decisions if d.get("source") is None]  # self-reported: nothing to recompute
    if encoder_tolerance is None and any("foundation" in d for _, d in decisions):
        from ..capture.encoder import ENCODER_TOLERANCE

        encoder_tolerance = ENCODER_TOLERANCE
    report.encoder_tolerance = encoder_tolerance
    total = len(decisions)
    logged_erasures = {e.get("commitment") for _, e in ledger.entries_of_type("erasure")}
    loaded: dict[str, object] = {}
    done = 0
    for chunk in _chunks(decisions, batch_size):
        private = ledger.private_values_for([i for i, _ in chunk])
        by_model: dict[str, list[tuple[int, dict, dict]]] = {}
        erased = ledger.erased_for([i for i, _ in chunk])
        for index, entry in chunk:
            opened: dict[str, Any] = {}
            skip = False
            for kind, field_name in (("input", "input"), ("output", "output_commitment")):
                if field_name not in entry:
                    continue
                opening = private.get(index, {}).get(kind)
                if opening is None:
                    if kind in erased.get(index, set()) and entry[field_name] in logged_erasures:
                        report.erased += 1
                    elif kind in erased.get(index, set()):  # marked erased beside the log, but not on it
                        report.unlogged_erasures.append({"index": index, "field": field_name})
                    else:  # no recorded erasure: the value beside the log went missing
                        report.missing.append({"index": index, "field": field_name})
                    skip = True
                    break
                commitment, salt, value = opening
                if commitment != entry[field_name] or not check_commitment(entry[field_name], salt, value):
                    report.commitment_failures.append({"index": index, "field": field_name})
                    skip = True
                    break
                opened[kind] = json.loads(value)
            if skip:
                continue
            if "output" in opened:  # private deployment: the logged output is beside the log
                entry = {**entry, "output": opened["output"]}
            key = (entry["model"], entry["foundation"]) if "foundation" in entry else entry["model"]
            by_model.setdefault(key, []).append((index, entry, opened["input"], _batch_key(entry)))
        for fp, rows in by_model.items():
            if fp not in loaded:
                recorded: tuple[str, ...] = ()
                try:
                    recorded = registry.get(fp[0] if isinstance(fp, tuple) else fp).trusted
                    trust = (*trusted, *recorded) if trust_recorded else tuple(trusted)
                    if isinstance(fp, tuple):  # a head on a foundation encoder: embeddings, then the head
                        from ..capture.encoder import EncoderHeadReplayer

                        replayer = EncoderHeadReplayer(registry, fp[0], fp[1], trust)
                        loaded[fp] = (replayer.head, replayer)
                    else:
                        loaded[fp] = (registry.get(fp), registry.load(fp, trust))
                except UntrustedTypesError as exc:
                    loaded[fp] = None
                    report.not_checked.append({"model": fp if isinstance(fp, str) else fp[0], "types": exc.types,
                                               "recorded": list(recorded)})
                except (RegistryError, ArtifactError) as exc:
                    loaded[fp] = None
                    name = fp if isinstance(fp, str) else f"{fp[0]} on foundation {fp[1]}"
                    report.errors.append(f"model {name}: {exc}")
            if loaded[fp] is None:
                continue
            record, estimator = loaded[fp]
            tol = report.encoder_tolerance if isinstance(fp, tuple) else tolerance
            for batch in _logged_batches(rows):
                report.batches += 1
                in_batch = _recompute(estimator, record, batch)
                if alone and len(batch) > 1:
                    picks = _spread(len(batch), alone_per_batch)
                    report.alone_checked += len(picks)
                    for pos in picks:
                        row = batch[pos]
                        by_itself = _recompute(estimator, record, [row])[0]
                        if not _same(by_itself, in_batch[pos], tol):
                            report.batch_dependent += 1
                            if len(report.batch_dependent_examples) < 100:
                                report.batch_dependent_examples.append(
                                    {"index": row[0], "in_batch": in_batch[pos], "alone": by_itself, "batch_size": len(batch)})
                for (index, entry, _, _), recomputed in zip(batch, in_batch):
                    out = entry["output"]
                    report.checked += 1
                    report.encoder_checked += isinstance(fp, tuple)
                    if not isinstance(out, dict) or "label" not in out:
                        out = {"label": out} if not isinstance(out, dict) else out
                    if "proba" in out and isinstance(out["proba"], list):
                        diff = max((abs(a - b) for a, b in zip(out["proba"], recomputed["proba"])), default=math.inf) \
                            if len(out["proba"]) == len(recomputed["proba"]) else math.inf
                        report.max_abs_diff = max(report.max_abs_diff, diff)
                        same = diff <= tol and recomputed["label"] == out["label"]
                    else:
                        recomputed = {"label": recomputed["label"]}
                        same = recomputed["label"] == out.get("label")
                    if same:
                        report.matched += 1
                    else:
                        report.mismatch_count += 1
                        if len(report.mismatches) < 100:
                            report.mismatches.append({"index": index, "logged": out, "recomputed": recomputed})
        done += len(chunk)
        if progress:
            progress(done, total)
    report.total = total + report.self_reported
    report.ok = report.mismatch_count == 0 and not report.commitment_failures and not report.errors and not report.missing \
        and not report.unlogged_erasures
    return report


def replay_verdict(report: ReplayReport) -> tuple[str, str]:
    """The verdict and severity of a replay, as a finding states them.

    Returns:
        ``("alert", "critical")`` when outputs differ or commitments fail, ``("alert", "high")`` when values
        are missing, a model could not be loaded or outputs depend on the rest of their batch, ``("insufficient-data", "info")`` when nothing could be
        checked, else ``("ok", "info")``.
    """
    if report.mismatch_count or report.commitment_failures or report.unlogged_erasures:
        return "alert", "critical"
    if report.missing or report.errors or report.batch_dependent:
        return "alert", "high"
    if report.not_checked:
        return "insufficient-data", "info"
    if report.checked == 0:
        return "insufficient-data", "info"
    return "ok", "info"


def replay_finding(report: ReplayReport, model: str | None, deployment: str | None, time: str,
                   by_role: str = "supervisor") -> dict:
    """The ``finding`` entry recording a replay: counts and mismatched indexes, never inputs or outputs.

    Args:
        report: what ``replay`` found.
        model, deployment: what was replayed (None: all).
        time: RFC 3339 UTC time of the entry.
        by_role: who ran it.

    Returns:
        The entry as a JSON object (``glasslog.findings.finding_entry``: source ``audit``, check
        ``REPLAY_CHECK``, verdict and severity from ``replay_verdict``), for ``Ledger.append``.
    """
    from ..findings import finding_entry

    verdict, severity = replay_verdict(report)
    evidence = {"checked": report.checked, "matched": report.matched, "erased": report.erased,
                "mismatch_count": report.mismatch_count,
                "mismatched_indexes": [m["index"] for m in report.mismatches[:20]],
                "commitment_failures": [f["index"] for f in report.commitment_failures[:20]],
                "missing": [m["index"] for m in report.missing[:20]],
                "unlogged_erasures": [m["index"] for m in report.unlogged_erasures[:20]],
                "batch_dependent": report.batch_dependent,
                "not_checked": [{"model": m["model"], "types": m["types"][:10]} for m in report.not_checked[:5]],
                "batch_dependent_indexes": [m["index"] for m in report.batch_dependent_examples[:20]],
                "max_abs_diff": report.max_abs_diff, "tolerance": report.tolerance,  # not finite: null
                "errors": [e[:300] for e in report.errors[:5]]}
    return finding_entry(source="audit", check=REPLAY_CHECK, statistic="mismatches", verdict=verdict, severity=severity,
                         by_role=by_role, time=time, value=report.mismatch_count, threshold=0, model=model,
                         deployment=deployment, window={"decisions": report.total}, evidence=evidence)


def _batch_key(entry: dict) -> tuple:
    """What one logged batch shares: model, foundation, deployment and time (``CapturedModel`` stamps a batch once)."""
    return entry["model"], entry.get("foundation"), entry["deployment"], entry["time"]


def _chunks(decisions: list, size: int):
    """``decisions`` in steps of about ``size``, never splitting a logged batch (consecutive entries, one key)."""
    start = 0
    while start < len(decisions):
        end = min(start + size, len(decisions))
        while end < len(decisions) and decisions[end][0] == decisions[end - 1][0] + 1 \
                and _batch_key(decisions[end][1]) == _batch_key(decisions[end - 1][1]):
            end += 1
        yield decisions[start:end]
        start = end


def _spread(n: int, k: int) -> list[int]:
    """``k`` positions spread evenly over ``range(n)``, first and last included (all of them when ``k`` <= 0 or >= n)."""
    if k <= 0 or k >= n:
        return list(range(n))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _logged_batches(rows: list) -> list[list]:
    """``rows`` (index, entry, input, key) split into the batches they were logged in."""
    out: list[list] = []
    for r in rows:
        if out and r[3] == out[-1][-1][3] and r[0] == out[-1][-1][0] + 1:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def _recompute(estimator, record, rows: list) -> list[dict]:
    """The model's outputs for ``rows`` in one call: ``{"label", "proba"}`` (proba when any row logged one)."""
    frame = pd.DataFrame([r[2] for r in rows], columns=record.card.feature_names)
    for f in record.card.features:
        if f.type == "numeric":
            frame[f.name] = pd.to_numeric(frame[f.name]).astype(float) if frame[f.name].isna().any() else pd.to_numeric(frame[f.name])
    with_proba = any(isinstance(r[1]["output"], dict) and "proba" in r[1]["output"] for r in rows)
    labels = np.asarray(estimator.predict(frame)).tolist()
    if not with_proba:
        return [{"label": _plain(v)} for v in labels]
    probas = np.asarray(estimator.predict_proba(frame), dtype=float)
    classes = list(getattr(estimator, "classes_", []))
    return [{"label": _plain(classes[int(np.argmax(p))] if classes else labels[k]), "proba": p.tolist()}
            for k, p in enumerate(probas)]


def _same(a: dict, b: dict, tol: float) -> bool:
    if a["label"] != b["label"]:
        return False
    pa, pb = a.get("proba"), b.get("proba")
    return pa is None or pb is None or (len(pa) == len(pb) and all(abs(x - y) <= tol for x, y in zip(pa, pb)))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value

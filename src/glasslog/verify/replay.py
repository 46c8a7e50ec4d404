"""Replay: recompute logged decisions from the registered weights and the stored inputs.

For every decision entry (optionally of one model or deployment) this
opens the input commitment (and, for private deployments, the output
commitment) with the stored values and salts, loads the
registered artifact (checked against its fingerprint), recomputes the
output, and compares: labels must be equal exactly, probabilities within
``tolerance`` (absolute, default 1e-9; JSON round-trips floats exactly, so
any larger difference means different weights, code or inputs).
Decisions whose inputs or outputs were erased (an erasure recorded beside the
log) are counted, not failed; a private value missing without a recorded
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
from ..registry import ArtifactError, Registry, RegistryError

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
        batch_size: decisions recomputed per model call.
        progress: called as ``progress(done, total)``.
        trusted: extra skops types to trust (see ``glasslog.registry.load_artifact``).
    """
    report = ReplayReport(tolerance=tolerance)
    registry = Registry(ledger)
    decisions = [(i, d) for i, d in ledger.entries_of_type("decision")
                 if (model is None or d["model"] == model or d.get("foundation") == model)
                 and (deployment is None or d["deployment"] == deployment)]
    if encoder_tolerance is None and any("foundation" in d for _, d in decisions):
        from ..capture.encoder import ENCODER_TOLERANCE

        encoder_tolerance = ENCODER_TOLERANCE
    report.encoder_tolerance = encoder_tolerance
    total = len(decisions)
    loaded: dict[str, object] = {}
    done = 0
    for start in range(0, total, batch_size):
        chunk = decisions[start : start + batch_size]
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
                    if kind in erased.get(index, set()):
                        report.erased += 1
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
            by_model.setdefault(key, []).append((index, entry, opened["input"]))
        for fp, rows in by_model.items():
            if fp not in loaded:
                try:
                    if isinstance(fp, tuple):  # a head on a foundation encoder: embeddings, then the head
                        from ..capture.encoder import EncoderHeadReplayer

                        replayer = EncoderHeadReplayer(registry, fp[0], fp[1], trusted)
                        loaded[fp] = (replayer.head, replayer)
                    else:
                        loaded[fp] = (registry.get(fp), registry.load(fp, trusted))
                except (RegistryError, ArtifactError) as exc:
                    loaded[fp] = None
                    name = fp if isinstance(fp, str) else f"{fp[0]} on foundation {fp[1]}"
                    report.errors.append(f"model {name}: {exc}")
            if loaded[fp] is None:
                continue
            record, estimator = loaded[fp]
            frame = pd.DataFrame([r[2] for r in rows], columns=record.card.feature_names)
            for f in record.card.features:
                if f.type == "numeric":
                    frame[f.name] = pd.to_numeric(frame[f.name]).astype(float) if frame[f.name].isna().any() else pd.to_numeric(frame[f.name])
            with_proba = [r for r in rows if "proba" in r[1]["output"]]
            labels = np.asarray(estimator.predict(frame)).tolist()
            probas = np.asarray(estimator.predict_proba(frame), dtype=float) if with_proba else None
            classes = list(getattr(estimator, "classes_", []))
            for pos, (index, entry, _) in enumerate(rows):
                out = entry["output"]
                report.checked += 1
                report.encoder_checked += isinstance(fp, tuple)
                if not isinstance(out, dict) or "label" not in out:
                    out = {"label": out} if not isinstance(out, dict) else out
                if "proba" in out and isinstance(out["proba"], list):
                    recomputed_p = probas[pos].tolist()
                    diff = max((abs(a - b) for a, b in zip(out["proba"], recomputed_p)), default=math.inf) \
                        if len(out["proba"]) == len(recomputed_p) else math.inf
                    report.max_abs_diff = max(report.max_abs_diff, diff)
                    recomputed_label = classes[int(np.argmax(probas[pos]))] if classes else labels[pos]
                    recomputed = {"label": _plain(recomputed_label), "proba": recomputed_p}
                    same = diff <= (report.encoder_tolerance if isinstance(fp, tuple) else tolerance) \
                        and _plain(recomputed_label) == out["label"]
                else:
                    recomputed = {"label": _plain(labels[pos])}
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
    report.total = total
    report.ok = report.mismatch_count == 0 and not report.commitment_failures and not report.errors and not report.missing
    return report


def replay_verdict(report: ReplayReport) -> tuple[str, str]:
    """The verdict and severity of a replay, as a finding states them.

    Returns:
        ``("alert", "critical")`` when outputs differ or commitments fail, ``("alert", "high")`` when values
        are missing or a model could not be loaded, ``("insufficient-data", "info")`` when nothing could be
        checked, else ``("ok", "info")``.
    """
    if report.mismatch_count or report.commitment_failures:
        return "alert", "critical"
    if report.missing or report.errors:
        return "alert", "high"
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
                "max_abs_diff": report.max_abs_diff, "tolerance": report.tolerance,  # not finite: null
                "errors": [e[:300] for e in report.errors[:5]]}
    return finding_entry(source="audit", check=REPLAY_CHECK, statistic="mismatches", verdict=verdict, severity=severity,
                         by_role=by_role, time=time, value=report.mismatch_count, threshold=0, model=model,
                         deployment=deployment, window={"decisions": report.total}, evidence=evidence)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    return value

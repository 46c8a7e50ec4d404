"""The capture SDK: wrap a registered model so every prediction is logged and receipted.

Usage::

    import glasslog
    log = glasslog.open("glasslog-data")                 # or create=True, origin=...
    model = glasslog.capture.wrap(log, fingerprint, deployment="bank.example/credit/2026-11")
    labels = model.predict(applicants, subject_ids=ids)  # exactly what the model returns
    receipt = glasslog.capture.receipt(log, model.last_batch.first_index)
    glasslog.capture.record_outcome(log, index, outcome=1)

Each call to ``predict`` / ``predict_proba`` appends one batch (one decision
entry per row, one signed checkpoint). Inputs and subject identifiers go into
the log only as commitments; their values and salts are stored beside it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BadInputError, ConflictError
from ..ledger import Entry, EntryError, Ledger, LedgerError, PrivateValue, canonical_json, commit, utc_now
from ..ledger.commitments import fresh_salts
from ..ledger.log import AppendResult, default_data_dir
from ..records import ABSENT, decision_entry, outcome_entry
from ..registry import Deployment, DeploymentError, Deployments, RegisteredModel, Registry, domain_problems
from ..storage import WriteTx

__all__ = [
    "open_log",
    "ModelNotActiveError",
    "InputError",
    "CapturedModel",
    "wrap",
    "record_outcome",
    "record_outcomes",
    "correct_outcome",
    "OutcomeError",
    "OutcomeConflictError",
]


class ModelNotActiveError(ConflictError, RuntimeError):
    """The model is suspended or withdrawn: the kill switch refuses its decisions (HTTP 409)."""

    problem_title = "Model not active"
    problem_kind = "model-not-active"


class InputError(BadInputError):
    """Model inputs have the wrong feature names, shape or values."""


def open_log(data_dir: str | os.PathLike | None = None, *, create: bool = False, origin: str | None = None,
             store: str | None = None) -> Ledger:
    """Open the log in ``data_dir`` (default ``$GLASSLOG_DATA_DIR`` or ``./glasslog-data``).

    Args:
        data_dir: the data directory (keys and artifacts; the SQLite database unless ``store`` is given).
        create: create the log if there is none (``origin`` required then).
        origin: origin for a new log, e.g. ``bank.example/credit-decisions``.
        store: the log's database when it is not the data directory's SQLite
            file: a ``postgresql://`` URL (default ``$GLASSLOG_STORE``).

    Raises:
        LedgerError: no log there and ``create`` is false, or no origin given.
    """
    path = default_data_dir() if data_dir is None else data_dir
    from pathlib import Path

    if create and not (Path(path) / "log.key").exists():
        if not origin:
            raise LedgerError("creating a log needs an origin, e.g. origin='bank.example/credit-decisions'")
        return Ledger.create(path, origin, store=store)
    return Ledger.open(path, store=store)


def _native(value: Any) -> Any:
    """A JSON-native copy of a model input or output value (NaN inputs become null)."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, np.ndarray):
        return [_native(v) for v in value.tolist()]
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict]:
    """The frame's rows as JSON-native dicts (numpy scalars converted, NaN as null)."""
    return [{k: _native(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _is_records(X: Any) -> bool:
    """True for a list of JSON objects (one per row), the form HTTP clients send."""
    return isinstance(X, list) and bool(X) and all(type(r) is dict for r in X)


def _check_output_shape(output: Any, classes: list, row: int) -> None:
    """Refuse an externally computed output that cannot have come from a classifier with these classes.

    Expected: ``{"label": <one of classes>}``, optionally with ``"proba"``: one
    probability per class (finite, in [0, 1], summing to 1 within 1e-6) whose
    largest entry is the label's.
    """
    if not isinstance(output, dict) or "label" not in output or set(output) - {"label", "proba"}:
        raise InputError(f"output for row {row} must be an object with 'label' (and optionally 'proba'), got {output!r}")
    if output["label"] not in classes:
        raise InputError(f"output for row {row}: label {output['label']!r} is not one of the model card's classes {classes}")
    proba = output.get("proba")
    if proba is None:
        return
    if not isinstance(proba, list) or len(proba) != len(classes) or not all(
            isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and 0 <= p <= 1 for p in proba):
        raise InputError(f"output for row {row}: proba must be {len(classes)} probabilities between 0 and 1, got {proba!r}")
    if abs(sum(proba) - 1) > 1e-6:
        raise InputError(f"output for row {row}: proba sums to {sum(proba)!r}, not 1")
    if classes[max(range(len(proba)), key=proba.__getitem__)] != output["label"]:
        raise InputError(f"output for row {row}: label {output['label']!r} is not the class with the highest probability")


def _native_output(value: Any) -> Any:
    """A JSON-native copy of an externally computed output (numpy scalars converted)."""
    if isinstance(value, dict):
        return {str(k): _native_output(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_native_output(v) for v in list(value)]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _output_value(value: Any, row: int) -> Any:
    if isinstance(value, (np.floating, float)) and not math.isfinite(float(value)):
        raise InputError(f"model output for row {row} is {float(value)}: NaN and infinity cannot be logged")
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (str, int, float, bool)):
        return value
    raise InputError(f"model output for row {row} has type {type(value).__name__}, which cannot be logged")


@dataclass
class CapturedModel:
    """A registered model wrapped so that its decisions are logged.

    Attributes:
        ledger: the log.
        model: the registered model's record.
        deployment: deployment name, e.g. ``bank.example/credit/2026-11``.
        visibility: the deployment's declared visibility; for ``private``
            deployments outputs are logged as commitments.
        estimator: the loaded scikit-learn model (from the verified artifact).
        last_batch: what the last call appended (indexes, checkpoint), or None.
    """

    ledger: Ledger
    model: RegisteredModel
    deployment: str
    estimator: Any
    registry: Registry
    visibility: str = "private"
    last_batch: AppendResult | None = None

    def _frame(self, X: Any) -> pd.DataFrame:
        names = self.model.card.feature_names
        if isinstance(X, pd.DataFrame):
            cols = [str(c) for c in X.columns]
            missing = [n for n in names if n not in cols]
            extra = [c for c in cols if c not in names]
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing features {missing}")
                if extra:
                    parts.append(f"unexpected columns {extra}")
                raise InputError(f"inputs do not match model {self.model.card.name}: {'; '.join(parts)}")
            frame = X[names]
        else:
            arr = np.asarray(X, dtype=object)
            if arr.ndim != 2:
                raise InputError(f"inputs must be 2-D (rows x {len(names)} features), got shape {arr.shape}")
            if arr.shape[1] != len(names):
                raise InputError(f"inputs have {arr.shape[1]} columns, model {self.model.card.name} expects {len(names)}: {names}")
            frame = pd.DataFrame(arr, columns=names)
            for f in self.model.card.features:
                if f.type == "numeric":
                    frame[f.name] = pd.to_numeric(frame[f.name], errors="raise")
        if len(frame) == 0:
            raise InputError("inputs have no rows")
        return frame

    def _check_active(self) -> None:
        current = self.registry.get(self.model.fingerprint)
        self.model = current
        if current.status != "active":
            last = current.history[-1]
            raise ModelNotActiveError(
                f"model {current.card.name} {current.card.version} ({current.fingerprint[:19]}...) is {current.status}"
                f" since entry {last.index} ({last.reason}); its decisions are refused"
            )

    def log_outputs(
        self,
        X: Any,
        outputs: Sequence[Any],
        subject_ids: Sequence[str | None] | None = None,
        within: Callable[[WriteTx, int], None] | None = None,
    ) -> AppendResult:
        """Log decisions whose outputs were computed elsewhere (e.g. by an HTTP client).

        The outputs are logged as given; ``glasslog verify replay`` later
        checks them against the registered weights.

        Args:
            X: inputs, as for ``predict``, or a list of JSON objects (one per
                row, keyed by the card's feature names) as HTTP clients send them,
                logged as given without a DataFrame round trip.
            outputs: one JSON value per row (e.g. ``{"label": 1, "proba": [0.2, 0.8]}``).
            subject_ids: one subject identifier (or None) per row.
            within: passed to ``Ledger.append`` (rows beside the log in the same transaction).

        Raises:
            ModelNotActiveError, InputError: as for ``predict``; also a count
                of outputs that differs from the rows, or an output that is not
                loggable (NaN, infinity, integers beyond 2**53).
        """
        self._check_active()
        records = self._json_records(X) if _is_records(X) else _records(self._frame(X))
        if len(outputs) != len(records):
            raise InputError(f"got {len(outputs)} outputs for {len(records)} input rows")
        clean = []
        classes = self.model.card.output.get("classes") if isinstance(self.model.card.output, dict) else None
        for i, o in enumerate(outputs):
            native = _native_output(o)
            try:
                canonical_json(native)
            except EntryError as exc:
                raise InputError(f"output for row {i} cannot be logged: {exc}") from None
            if isinstance(classes, list) and classes:
                _check_output_shape(native, classes, i)
            clean.append(native)
        self._log(records, clean, subject_ids, within)
        return self.last_batch

    def _json_records(self, rows: list) -> list[dict]:
        """Rows given as JSON objects (e.g. parsed from an HTTP request), checked against the card's features."""
        names = self.model.card.feature_names
        wanted = set(names)
        out = []
        for i, row in enumerate(rows):
            if row.keys() != wanted:
                missing = [n for n in names if n not in row]
                extra = [str(k) for k in row if k not in wanted]
                parts = ([f"missing features {missing}"] if missing else []) + ([f"unexpected features {extra}"] if extra else [])
                raise InputError(f"input row {i} does not match model {self.model.card.name}: {'; '.join(parts)}")
            out.append({n: _native(row[n]) for n in names})
        if not out:
            raise InputError("inputs have no rows")
        return out

    def _out_of_domain(self, records: list[dict]) -> dict[int, list[str]]:
        """Rows with values outside the card's stated feature domains: refused (``InputError`` naming every such
        value, up to 20) under the card's ``input_policy`` ``refuse`` (the default), else ``{row: [features]}``."""
        card = self.model.card
        if not card.has_domains():
            return {}
        found = {pos: bad for pos, r in enumerate(records) if (bad := domain_problems(card, r))}
        if found and (card.input_policy or "refuse") == "refuse":
            problems = [f"input row {pos} feature {name}: {problem}" for pos, bad in found.items() for name, problem in bad]
            more = f"; and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise InputError(f"{'; '.join(problems[:20])}{more} (the card's input policy is to refuse values outside "
                             "the training data's domain)")
        return {pos: [name for name, _ in bad] for pos, bad in found.items()}

    def _log(self, records: list[dict], outputs: list[Any], subject_ids: Sequence[Any] | None,
             within: Callable[[WriteTx, int], None] | None = None) -> None:
        if subject_ids is not None and len(subject_ids) != len(records):
            raise InputError(f"got {len(subject_ids)} subject ids for {len(records)} input rows")
        out_of_domain = self._out_of_domain(records)
        now = utc_now()
        entries: list[Entry] = []
        private: list[PrivateValue] = []
        salts = iter(fresh_salts(len(records) * 3))
        for pos, (value, output) in enumerate(zip(records, outputs)):
            try:
                input_commitment, salt, value_bytes = commit(value, next(salts))
            except EntryError as exc:
                raise InputError(f"input row {pos} cannot be logged: {exc}") from None
            private.append(PrivateValue(pos, "input", input_commitment, salt, value_bytes))
            public, output_commitment, subject_commitment = ABSENT, None, None
            if self.visibility == "public-service":
                public = output
            else:
                output_commitment, o_salt, o_bytes = commit(output, next(salts))
                private.append(PrivateValue(pos, "output", output_commitment, o_salt, o_bytes))
            if subject_ids is not None and subject_ids[pos] is not None:
                sid = subject_ids[pos]
                if not isinstance(sid, str) or not sid:
                    raise InputError(f"subject id for row {pos} must be a non-empty string, got {sid!r}")
                subject_commitment, s_salt, s_bytes = commit(sid, next(salts))
                private.append(PrivateValue(pos, "subject", subject_commitment, s_salt, s_bytes))
            try:
                entries.append(Entry.from_object(decision_entry(
                    model=self.model.fingerprint, deployment=self.deployment, time=now, input=input_commitment,
                    output=public, output_commitment=output_commitment, subject=subject_commitment,
                    out_of_domain=out_of_domain.get(pos) or None), checked=True))
            except EntryError as exc:
                raise InputError(f"decision for row {pos} cannot be logged: {exc}") from None
        self.last_batch = self.ledger.append(entries, private, within)

    def predict(self, X: Any, subject_ids: Sequence[str | None] | None = None, *,
                within: Callable[[WriteTx, int], None] | None = None) -> np.ndarray:
        """Predict labels and log one decision per row.

        Args:
            X: DataFrame with the card's feature columns (any order), or a
                2-D array of shape (rows, features) in the card's order.
            subject_ids: one subject identifier (or None) per row.
            within: passed to ``Ledger.append`` (rows beside the log in the same transaction).

        Returns:
            Exactly what the model's ``predict`` returns, shape (rows,).

        Raises:
            ModelNotActiveError: the model is suspended or withdrawn.
            InputError: wrong features, shape, subject ids, or unloggable outputs.
        """
        self._check_active()
        frame = self._frame(X)
        result = self.estimator.predict(frame)
        outputs = [{"label": _output_value(v, i)} for i, v in enumerate(np.asarray(result).tolist())]
        self._log(_records(frame), outputs, subject_ids, within)
        return result

    def predict_proba(self, X: Any, subject_ids: Sequence[str | None] | None = None, *,
                      within: Callable[[WriteTx, int], None] | None = None) -> np.ndarray:
        """Predict class probabilities and log one decision per row.

        The logged output is ``{"label": <class with the highest probability>,
        "proba": [p_0, ..., p_k-1]}`` in the order of the model's ``classes_``.

        Returns:
            Exactly what the model's ``predict_proba`` returns, shape (rows, classes), float.

        Raises:
            ModelNotActiveError, InputError: as for ``predict``.
        """
        self._check_active()
        frame = self._frame(X)
        result = self.estimator.predict_proba(frame)
        arr = np.asarray(result, dtype=float)
        if not np.isfinite(arr).all():
            bad = int(np.where(~np.isfinite(arr).all(axis=1))[0][0])
            raise InputError(f"model output for row {bad} contains NaN or infinity, which cannot be logged")
        classes = list(getattr(self.estimator, "classes_", range(arr.shape[1])))
        outputs = [{"label": _output_value(classes[int(np.argmax(p))], i), "proba": [float(x) for x in p]} for i, p in enumerate(arr)]
        self._log(_records(frame), outputs, subject_ids, within)
        return result


def wrap(
    ledger: Ledger,
    fingerprint: str,
    deployment: str,
    trusted: Sequence[str] = (),
    *,
    visibility: str | None = None,
    description: str = "",
    estimator: Any = None,
) -> CapturedModel:
    """Wrap a registered model for logged predictions in ``deployment``.

    The estimator is loaded from the registered artifact after checking it
    against the fingerprint, so logged decisions come from exactly those weights.
    ``estimator`` passes one already loaded that way (``Registry.load``), e.g.
    shared by a server's threads: loading a skops artifact per thread costs more
    than the decisions (measured: half of a one-decision request's CPU).
    ``trusted`` names extra skops types the caller trusts (see
    ``glasslog.registry.load_artifact``).

    A deployment not yet on the log is declared with ``visibility``
    (default ``private``: outputs logged as commitments) and ``description``.

    Raises:
        glasslog.registry.RegistryError: unknown model.
        ModelNotActiveError: the model is suspended or withdrawn (nothing is written).
        glasslog.registry.ArtifactError: artifact altered or untrusted.
        glasslog.registry.DeploymentError: the deployment is declared with
            another visibility than the one asked for.
        ValueError: empty deployment name.
    """
    if not deployment or not isinstance(deployment, str):
        raise ValueError("deployment must be a non-empty name, e.g. 'bank.example/credit/2026-11'")
    registry = Registry(ledger)
    model = registry.get(fingerprint)
    if model.status != "active":
        last = model.history[-1]
        raise ModelNotActiveError(f"model {model.card.name} {model.card.version} is {model.status} since entry {last.index}"
                                  f" ({last.reason}); its decisions are refused")
    if estimator is None:
        estimator = registry.load(model.fingerprint, trusted)
    deployments = Deployments(ledger)
    declared: Deployment | None = deployments.find(deployment)
    if declared is None:
        declared = deployments.declare(deployment, visibility or "private", description)
    elif visibility is not None and visibility != declared.visibility:
        raise DeploymentError(f"deployment {deployment!r} is declared {declared.visibility}, not {visibility}")
    return CapturedModel(ledger, model, deployment, estimator, registry, declared.visibility)


class OutcomeError(BadInputError):
    """An outcome that is refused: not one of the card's classes, or a malformed correction.

    ``row`` is its position in the batch and ``field`` the offending field (``outcome``, ``corrects``, ``reason``)."""

    def __init__(self, row: int, field: str, message: str):
        self.row, self.field = row, field
        super().__init__(f"outcomes[{row}].{field}: {message}")


class OutcomeConflictError(ConflictError):
    """A second outcome for a decision that is not stated as a correction of the latest one."""

    def __init__(self, row: int, message: str):
        self.row, self.field = row, "corrects"
        super().__init__(f"outcomes[{row}].corrects: {message}")


def _in_classes(value: Any, classes: list) -> bool:
    """``value`` is one of ``classes`` (same JSON type: ``1`` is not ``1.0`` nor ``true``)."""
    return any(type(value) is type(c) and value == c for c in classes)


def record_outcomes(ledger: Ledger, outcomes: Sequence[tuple[int, Any]] | Sequence[tuple[int, Any, int | None, str | None]]
                    ) -> AppendResult:
    """Log observed outcomes of earlier decisions, in one batch.

    Args:
        outcomes: ``(decision index, outcome)`` pairs, or ``(decision index,
            outcome, corrects, reason)`` for a correction; outcomes are JSON
            values (e.g. 1 = the loan defaulted).

    A generation (a generative model's logged output) takes an outcome as a
    decision does (e.g. whether the letter it drafted was upheld), by its index.
    The outcome must be one of the model card's ``output.classes`` (when the
    card states them). A decision has one outcome; a second one is a
    correction: it names the outcome entry it corrects (``corrects``, the
    decision's latest outcome entry) and says why (``reason``). Every reader
    (monitors, audits, the web register, replay) uses a decision's latest
    outcome entry.

    For decisions of private deployments the outcome is logged as a
    commitment, with the value beside the log.

    Raises:
        ValueError: an index that is not a decision or generation entry, or an empty list.
        OutcomeError: an outcome not among the card's classes, or a correction
            that names another entry or gives no reason.
        OutcomeConflictError: a second outcome for a decision without ``corrects``.
        EntryError: an outcome that is not loggable (NaN ...).
    """
    if not outcomes:
        raise ValueError("no outcomes given")
    now = utc_now()
    entries: list[dict] = []
    private: list[PrivateValue] = []
    rows = [(tuple(o) + (None, None))[:4] for o in outcomes]
    decisions: list[dict] = []
    for idx, outcome, _, _ in rows:
        if outcome is None:
            raise ValueError(f"outcome of decision {idx} is null: record an outcome once it is known")
        if not isinstance(idx, (int, np.integer)) or isinstance(idx, bool):
            raise ValueError(f"decision index must be an integer, got {idx!r}")
        try:
            data = ledger.entry(int(idx))
        except IndexError:
            raise ValueError(f"no entry {idx} in the log: outcomes must refer to a logged decision") from None
        decision = json.loads(data)
        if not isinstance(decision, dict) or decision.get("type") not in ("decision", "generation"):
            raise ValueError(f"entry {idx} is not a decision or a generation; outcomes must refer to one")
        decisions.append(decision)
    # The latest outcome entry of each decision named (on the log, then earlier in this batch).
    wanted = {int(r[0]) for r in rows}
    latest: dict[int, int] = {}
    for oi, o in ledger.entries_of_type("outcome", min(wanted)):
        if o.get("decision") in wanted:
            latest[o["decision"]] = oi
    registry = Registry(ledger)
    classes_of: dict[str, list | None] = {}
    in_batch: set[int] = set()
    for k, ((idx, outcome, corrects, reason), decision) in enumerate(zip(rows, decisions)):
        idx = int(idx)
        value = _native(outcome)
        fp = decision.get("model")
        if fp is None:  # a generation reported for a model that is not registered: no card, no classes
            classes_of[fp] = None
        if fp not in classes_of:
            try:
                out = registry.get(fp).card.output
                classes_of[fp] = out.get("classes") if isinstance(out, dict) and isinstance(out.get("classes"), list) else None
            except LookupError:
                classes_of[fp] = None
        classes = classes_of[fp]
        if classes and not _in_classes(value, classes):
            raise OutcomeError(k, "outcome", f"{value!r} is not one of the model card's classes {classes!r}")
        if idx in in_batch:
            raise OutcomeConflictError(k, f"decision {idx} has an outcome earlier in this batch; send a correction in a "
                                          "later batch")
        in_batch.add(idx)
        previous = latest.get(idx)
        if corrects is None:
            if previous is not None:
                raise OutcomeConflictError(k, f"decision {idx} already has an outcome (entry {previous}); a second "
                                              f"outcome is a correction: give corrects={previous} and a reason")
            if reason is not None:
                raise OutcomeError(k, "reason", "a reason is given only with corrects (a correction)")
        else:
            if isinstance(corrects, bool) or not isinstance(corrects, (int, np.integer)):
                raise OutcomeError(k, "corrects", f"must be the index of an outcome entry, got {corrects!r}")
            if previous is None:
                raise OutcomeError(k, "corrects", f"decision {idx} has no outcome to correct")
            if int(corrects) != previous:
                raise OutcomeError(k, "corrects", f"must name decision {idx}'s latest outcome entry {previous}, "
                                                  f"got {int(corrects)}")
            if not isinstance(reason, str) or not reason.strip():
                raise OutcomeError(k, "reason", "a correction needs a reason (non-empty text)")
        public, commitment = ABSENT, None
        if "output_commitment" in decision:  # a private deployment: the outcome is private too
            commitment, salt, value_bytes = commit(value)
            private.append(PrivateValue(len(entries), "outcome", commitment, salt, value_bytes))
        else:
            public = value
        try:
            entries.append(outcome_entry(decision=idx, time=now, outcome=public, outcome_commitment=commitment,
                                         corrects=None if corrects is None else int(corrects), reason=reason))
        except EntryError as exc:  # named as the ledger names a bad entry of a batch
            raise EntryError(exc.detail, field=exc.field, index=len(entries)) from None
    return ledger.append(entries, private)


def record_outcome(ledger: Ledger, decision_index: int, outcome: Any) -> AppendResult:
    """Log the observed outcome of one decision (see ``record_outcomes``)."""
    return record_outcomes(ledger, [(decision_index, outcome)])


def correct_outcome(ledger: Ledger, decision_index: int, outcome: Any, *, corrects: int, reason: str) -> AppendResult:
    """Log a correction of a decision's outcome: ``corrects`` is its latest outcome entry (see ``record_outcomes``)."""
    return record_outcomes(ledger, [(decision_index, outcome, corrects, reason)])

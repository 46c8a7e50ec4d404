"""Decisions, their outcomes and receipts.

Each role reads the decisions it may (``glasslog.access.may_read_decision``)
with its own view of them (``glasslog.access.decision_view``): the public sees
public-service deployments' outputs and commitments; a subject, with their
receipt token, their own decision with every value opened. The operator
appends decision batches (the server computes the outputs with the registered
model, or logs the ones the client sends) and outcomes; a batch is appended
whole or not at all: one bad row rejects it, naming the row, and nothing is
written. Each decision appended gets a receipt against the batch's own
checkpoint (``glasslog.capture.receipts_at``) and, if it names a subject, a
receipt token for them.
"""


import json
import math
import re
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Query
from pydantic import Field

from ... import capture
from ...access import Principal, decision_view, effective_principal, new_receipt_token, store_receipt_tokens
from ...access.policy import receipt_opens_private_values
from ...ledger import EntryError
from ...registry import ArtifactError, RegistryError, domain_problems
from ..deps import (
    Context,
    Operator,
    State,
    Who,
    api_router,
    listed_deployments,
    model_or_404,
    outcome_views,
    readable_output,
    uint,
)
from ..problems import READ, WRITE, Problem, errors, forbidden, invalid, short, unauthorized
from ..schemas import FINGERPRINT, MAX_BATCH, SAFE_INT, TIME, UINT, Open, Out, Strict, UInt, loggable
from .generations import GenerationOut, read_generation

__all__ = ["router"]

router = api_router()


# ------------------------------------------------------------ request models
class DecisionRow(Strict):
    input: dict[str, Any] = Field(description="Feature name -> value, exactly the model card's features: numbers for "
                                              "numeric features; text, integers or booleans for categorical ones; null "
                                              "for a missing value (if the model accepts them).")
    subject_id: str | None = Field(None, min_length=1, max_length=200, description="Who the decision is about.")
    output: Any = Field(None, description="The model's output, if computed by the client; omit to let the server compute it.")


class DecisionBatch(Strict):
    model: str = Field(pattern=FINGERPRINT)
    deployment: str = Field(min_length=1, max_length=200)
    method: Literal["predict", "predict_proba"] = "predict_proba"
    rows: list[DecisionRow] = Field(min_length=1, max_length=MAX_BATCH)


class OutcomeRow(Strict):
    decision: int | None = Field(None, ge=0, le=SAFE_INT, description="Index of the decision entry (give exactly one of "
                                 "decision and generation).")
    generation: int | None = Field(None, ge=0, le=SAFE_INT, description="Index of the generation entry (a generative "
                                   "model's output; GET /v1/generations), instead of decision. On the log the outcome "
                                   "entry names it in its decision field, as flags do.")
    outcome: Any = Field(description="The observed outcome: one of the model card's `output.classes` (when stated).")
    corrects: int | None = Field(None, ge=0, le=SAFE_INT, description="A correction: the index of the decision's latest "
                                 "outcome entry (a decision's second outcome is refused without it).")
    reason: str | None = Field(None, min_length=1, max_length=1000, description="Why the outcome is corrected "
                               "(required with `corrects`).")


class OutcomeBatch(Strict):
    outcomes: list[OutcomeRow] = Field(min_length=1, max_length=MAX_BATCH)


# ------------------------------------------------------------ response models
class OutcomeOut(Out):
    index: int
    time: str
    outcome: Any = None
    outcome_commitment: str | None = None
    corrects: int | None = Field(None, description="the outcome entry this one corrects (the latest outcome counts)")
    reason: str | None = None


class DecisionOut(Out):
    index: int
    model: str
    deployment: str
    time: str
    input: str = Field(description="commitment to the input values")
    subject: str | None = Field(None, description="commitment to the subject id")
    output_commitment: str | None = Field(None, description="commitment to the output (private deployments)")
    output: Any = Field(None, description="the model's output, where the caller's role may see it")
    input_values: dict[str, Any] | None = Field(None, description="input values the caller's role may see (null: erased)")
    withheld: list[str] | None = Field(None, description="input features withheld from the caller's role")
    subject_id: str | None = None
    outcomes: list[OutcomeOut]


class DecisionPage(Out):
    decisions: list[DecisionOut]
    next_after: int | None = Field(description="pass as ?after= for the next page; null on the last page")


class OpenedValue(Out):
    salt: str
    value: str


class ReceiptOut(Open):
    format: str
    origin: str
    index: int
    entry: str = Field(description="base64 entry bytes")
    tree_size: int
    checkpoint: str
    inclusion_proof: list[str]
    private: dict[str, OpenedValue] | None = Field(None, description="salts and values opening the entry's commitments")


class OwnReceipt(Out):
    decision: DecisionOut | None = Field(None, description="the decision the receipt token opens (absent for a generation)")
    generation: GenerationOut | None = Field(None, description="the generation the receipt token opens (a gateway or "
                                             "wrap_generator receipt token)")
    receipt: ReceiptOut


class AppendedDecision(Out):
    index: int
    receipt: ReceiptOut
    receipt_token: str | None = Field(None, description="for the subject: Bearer token opening their own decision")


class DecisionsAppended(Out):
    first_index: int
    tree_size: int
    checkpoint: str
    decisions: list[AppendedDecision]


class BatchAppended(Out):
    first_index: int
    tree_size: int
    checkpoint: str


# ------------------------------------------------------------ reading
def _decision(i: int, who: Principal, c: Context) -> dict:
    """Decision ``i`` as ``who`` may see it, with its outcomes; 404 if it is not a decision, 403 if not theirs to read."""
    entry, who = readable_output(c, who, i, "decision")
    private = c.ledger.private_values_for([i]).get(i, {})
    card = c.registry.get(entry["model"]).card if entry["model"] else None
    view = decision_view(who, i, entry, private, card)
    view["outcomes"] = outcome_views(c, who, i)
    return view


def _receipt(i: int, who: Principal, c: Context) -> dict:
    """The receipt of decision ``i``, opening its commitments for the roles that see every value."""
    deployment = json.loads(c.ledger.entry(i))["deployment"]
    who = effective_principal(who, i, deployment)
    return capture.receipt(c.ledger, i, include_private=receipt_opens_private_values(who.role)).to_dict()


@router.get("/v1/decisions/{index}", tags=["decisions"], summary="One decision, as the caller's role may see it",
            response_model=DecisionOut, response_model_exclude_unset=True, responses=errors(*READ, 403, 404))
def get_decision(index: UInt, who: Who, s: State) -> dict:
    return _decision(uint(index, "index"), who, s.ctx())


@router.get("/v1/decisions", tags=["decisions"], summary="Search decisions by model, deployment, time range and output (paginated)",
            response_model=DecisionPage, response_model_exclude_unset=True, responses=errors(*READ, 403, 404))
def search_decisions(who: Who, s: State, model: Annotated[str | None, Query(pattern=FINGERPRINT)] = None,
                     deployment: Annotated[str | None, Query(max_length=200)] = None,
                     since: Annotated[str | None, Query(pattern=TIME, description="inclusive, RFC 3339 UTC")] = None,
                     until: Annotated[str | None, Query(pattern=TIME, description="exclusive, RFC 3339 UTC")] = None,
                     output: Annotated[str | None, Query(max_length=200, description="output label, e.g. 1 or approve")] = None,
                     after: Annotated[str | None, Query(pattern=UINT, description="index from next_after")] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    c = s.ctx()
    if who.role == "subject":
        return {"decisions": [_decision(who.entry_index, who, c)], "next_after": None}
    visible = listed_deployments(c, who, deployment, "decisions")
    label = None
    if output is not None:
        try:
            label = json.dumps(json.loads(output))
        except (json.JSONDecodeError, RecursionError):
            label = json.dumps(output)
    start = uint(after, "after")
    found = c.index.search(model=model, deployments=visible, since=since, until=until, label=label,
                           after=-1 if start is None else start, limit=limit)
    signed = c.ledger.signed_size()
    found = [i for i in found if i < signed]
    return {"decisions": [_decision(i, who, c) for i in found],
            "next_after": found[-1] if len(found) == limit else None}


@router.get("/v1/receipt", tags=["subjects"], summary="A subject's own decision or generation and its receipt (receipt "
            "token as bearer)",
            response_model=OwnReceipt, response_model_exclude_unset=True, responses=errors(*READ, 403))
def get_own_receipt(who: Who, s: State) -> dict:
    if who.role == "public":
        raise unauthorized("send your receipt token: Authorization: Bearer grt_...")
    if who.role != "subject":
        raise forbidden(f"this is for subjects with a receipt token; role {who.role} reads receipts at GET /v1/receipts/{{index}}")
    c = s.ctx()
    i = who.entry_index
    if i < c.ledger.size and json.loads(c.ledger.entry(i)).get("type") == "generation":  # a generation's receipt token
        view, entry = read_generation(i, who, c)
        reader = effective_principal(who, i, entry["deployment"])
        receipt = capture.receipt(c.ledger, i, include_private=receipt_opens_private_values(reader.role)).to_dict()
        return {"generation": view, "receipt": receipt}
    return {"decision": _decision(i, who, c), "receipt": _receipt(i, who, c)}


@router.get("/v1/receipts/{index}", tags=["decisions"], summary="Receipt (entry, checkpoint, inclusion proof) of a decision",
            response_model=ReceiptOut, response_model_exclude_unset=True, responses=errors(*READ, 403, 404))
def get_receipt(index: UInt, who: Who, s: State) -> dict:
    c = s.ctx()
    i = uint(index, "index")
    _decision(i, who, c)  # access check
    return _receipt(i, who, c)


# ------------------------------------------------------------ appending
def _value_problem(feature, value: Any) -> str | None:
    """What is wrong with ``value`` for a model-card feature, or None."""
    if value is None:
        return None  # a missing value: the model decides whether it copes
    if feature.type == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number (the feature is numeric), got {type(value).__name__} {short(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
    elif not isinstance(value, (str, int, bool)) or isinstance(value, float):
        return f"must be text, an integer or a boolean (the feature is categorical), got {type(value).__name__}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > SAFE_INT:
        return "integers must be within +-2**53"
    if isinstance(value, str) and not value.isprintable():
        return "must be printable text"
    return None


MAX_FIELD_ERRORS = 20
"""A refused batch names up to this many bad fields (all of them, in row order, up to the limit)."""


def _check_rows(body: DecisionBatch, card) -> bool:
    """Refuse the batch (422 naming every bad field, up to ``MAX_FIELD_ERRORS``) if rows do not fit the card;
    True if the rows carry outputs. Values outside the card's stated domains are refused here under its input
    policy ``refuse`` (under ``flag`` they are logged with the decision naming them)."""
    names = card.feature_names
    with_output = [r.output is not None for r in body.rows]
    refuse_domain = card.has_domains() and (card.input_policy or "refuse") == "refuse"
    found: list[dict] = []

    def bad(field: str, problem: str) -> None:
        found.append({"field": field, "problem": problem})

    for i, row in enumerate(body.rows):
        if len(found) > MAX_FIELD_ERRORS:
            break
        missing = [n for n in names if n not in row.input]
        extra = [k for k in row.input if k not in names]
        if missing or extra:
            detail = "; ".join(p for p in (f"missing features {missing}" if missing else "",
                                            f"unexpected features {extra}" if extra else "") if p)
            bad(f"rows[{i}].input", detail)
            continue
        typed = True
        for f in card.features:
            problem = _value_problem(f, row.input[f.name])
            if problem:
                bad(f"rows[{i}].input.{f.name}", problem)
                typed = False
        if typed and refuse_domain:
            for name, problem in domain_problems(card, row.input):
                bad(f"rows[{i}].input.{name}", f"{problem} (the card's input policy is to refuse it)")
        if row.subject_id is not None and (not row.subject_id.isprintable() or not row.subject_id.strip()):
            bad(f"rows[{i}].subject_id", "must be printable text")
        if with_output[i] != with_output[0]:
            bad(f"rows[{i}].output", "give an output for every row or for none (then the server computes "
                                     f"them); row 0 has {'one' if with_output[0] else 'none'}")
        elif with_output[i]:
            problem = loggable(row.output)
            if problem:
                bad(f"rows[{i}].output", f"cannot be logged: {problem}")
    if found:
        shown = found[:MAX_FIELD_ERRORS]
        more = len(found) - 1
        detail = f"{shown[0]['field']}: {shown[0]['problem']}"
        if more:
            detail += f" (and {more}{'+' if len(found) > MAX_FIELD_ERRORS else ''} more: see errors)"
        raise Problem(422, "Invalid request", detail, shown, kind="invalid")
    return with_output[0]


class _Estimator:
    """A registered model's estimator, loaded on first use by ``load()`` (which caches it per process).

    A batch with client-given outputs never touches it, so logging such batches never waits for the artifact to
    be read and deserialised (seconds for a large model, on every worker process's first request).
    """

    def __init__(self, load):
        self._load = load

    def __getattr__(self, name: str):
        return getattr(self._load(), name)


def _locate_bad_row(estimator, method: str, frame: pd.DataFrame) -> int | None:
    """The first row the estimator refuses on its own, if any."""
    for pos in range(len(frame)):
        try:
            getattr(estimator, method)(frame.iloc[pos : pos + 1])
        except Exception:  # noqa: BLE001 - the estimator's own refusal, whatever its type
            return pos
    return None


@router.post("/v1/decisions", status_code=201, tags=["decisions"], response_model=DecisionsAppended,
             response_model_exclude_unset=True, responses=errors(*WRITE, 404, 409),
             summary="Append a batch of decisions (operator); returns receipts, and receipt tokens for subjects")
def append_decisions(body: DecisionBatch, who: Operator, s: State) -> dict:
    c = s.ctx()
    m = model_or_404(c, body.model)
    d = c.deployments.find(body.deployment)
    if d is None:
        raise invalid("deployment", "is not declared; POST /v1/deployments first")
    with_output = _check_rows(body, m.card)
    key = (m.fingerprint, d.name)

    def load():  # one loaded estimator per process, shared by the threads (read-only: predict and predict_proba)
        return s.shared(f"estimator:{m.fingerprint}", lambda: c.registry.load(m.fingerprint))

    try:
        if key not in c.wrapped:
            c.wrapped[key] = capture.wrap(c.ledger, m.fingerprint, d.name, estimator=_Estimator(load))
        # Outputs given by the client are logged as given: the artifact is loaded (and checked) only to compute them.
        estimator = None if with_output else load()
    except (ArtifactError, RegistryError) as exc:
        raise Problem(409, "Conflict", str(exc), kind="artifact") from None
    wrapped = c.wrapped[key]
    if not with_output and not callable(getattr(estimator, body.method, None)):
        raise invalid("method", f"the model has no {body.method}")
    frame = None if with_output else pd.DataFrame([r.input for r in body.rows], columns=m.card.feature_names)
    subject_ids = [r.subject_id for r in body.rows]
    tokens: list[str | None] = []

    def within(tx, first: int) -> None:
        tokens[:] = [new_receipt_token(first + pos) if sid else None for pos, sid in enumerate(subject_ids)]
        store_receipt_tokens(tx, [t for t in tokens if t])

    try:  # no lock: concurrent batches are group-committed (ServerState.group_commit)
        if with_output:
            result = wrapped.log_outputs([r.input for r in body.rows], [r.output for r in body.rows], subject_ids, within)
        else:
            decide = wrapped.predict if body.method == "predict" else wrapped.predict_proba
            decide(frame, subject_ids, within=within)
            result = wrapped.last_batch
    except (capture.InputError, EntryError) as exc:
        row = re.search(r"row (\d+)", str(exc))
        raise invalid(f"rows[{row.group(1)}]" if row else "rows", str(exc)) from None
    except (ValueError, TypeError, OverflowError, AttributeError, IndexError, KeyError) as exc:  # the estimator refusing the inputs
        bad = _locate_bad_row(wrapped.estimator, body.method, frame) if frame is not None else None
        raise invalid(f"rows[{bad}].input" if bad is not None else "rows",
                      f"the model cannot use these inputs: {exc}") from None
    # Receipts against the batch's own checkpoint (signed just now, so not re-verified).
    receipts = capture.receipts_at(c.ledger, result.indexes, result.tree_size, result.checkpoint)
    out = []
    for rc, token in zip(receipts, tokens):
        item = {"index": rc.index, "receipt": rc.to_dict()}
        if token:
            item["receipt_token"] = token
        out.append(item)
    return {"first_index": result.first_index, "tree_size": result.tree_size, "checkpoint": result.checkpoint,
            "decisions": out}


@router.post("/v1/outcomes", status_code=201, tags=["decisions"],
             summary="Record observed outcomes of decisions and generations (operator)",
             response_model=BatchAppended, responses=errors(*WRITE, 409))
def append_outcomes(body: OutcomeBatch, who: Operator, s: State) -> dict:
    c = s.ctx()
    size = c.ledger.signed_size()
    bad: list[dict] = []  # every bad field, up to 20, as for decision batches
    for k, o in enumerate(body.outcomes):
        target = "generation" if o.generation is not None else "decision"
        i = o.generation if o.generation is not None else o.decision
        if (o.decision is None) == (o.generation is None):
            bad.append({"field": f"outcomes[{k}].{target}", "problem": "give exactly one of decision and generation"})
        elif i >= size:
            bad.append({"field": f"outcomes[{k}].{target}", "problem": f"no entry {i} in the log (size {size})"})
        else:
            kind = json.loads(c.ledger.entry(i)).get("type")
            if kind != target:
                hint = f" (send it as {kind})" if kind in ("decision", "generation") else ""
                bad.append({"field": f"outcomes[{k}].{target}",
                            "problem": f"entry {i} is a {kind} entry, not a {target}{hint}"})
        if o.outcome is None:
            bad.append({"field": f"outcomes[{k}].outcome", "problem": "must not be null: record an outcome once it is known"})
        else:
            problem = loggable(o.outcome)
            if problem:
                bad.append({"field": f"outcomes[{k}].outcome", "problem": f"cannot be logged: {problem}"})
        if len(bad) >= 20:
            break
    if bad:
        first = bad[0]
        more = f" (and {len(bad) - 1} more: see errors)" if len(bad) > 1 else ""
        raise Problem(422, "Invalid request", f"{first['field']}: {first['problem']}{more}", bad, kind="invalid")
    try:
        result = capture.record_outcomes(c.ledger, [(o.decision if o.generation is None else o.generation, o.outcome,
                                                     o.corrects, o.reason) for o in body.outcomes])
    except capture.OutcomeConflictError as exc:
        raise invalid(f"outcomes[{exc.row}].{exc.field}", str(exc).split(": ", 1)[1], 409) from None
    except capture.OutcomeError as exc:
        raise invalid(f"outcomes[{exc.row}].{exc.field}", str(exc).split(": ", 1)[1]) from None
    except EntryError as exc:
        raise invalid(f"outcomes[{exc.index}]" if exc.index is not None else "outcomes", str(exc)) from None
    except ValueError as exc:
        raise invalid("outcomes", str(exc)) from None
    return {"first_index": result.first_index, "tree_size": result.tree_size, "checkpoint": result.checkpoint}

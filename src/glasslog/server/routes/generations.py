"""Generations: a generative model's logged outputs (``generation`` entries), read as each role may see them.

| endpoint | who |
|---|---|
| ``GET /v1/generations`` | anyone: the generations of the deployments the caller reads (filter by model and deployment; paginated) |
| ``GET /v1/generations/{index}`` | as for decisions: anyone for public-service deployments, keyed roles for the deployments they read, a subject with the receipt token of that generation |
| ``GET /v1/generations/{index}/receipt`` | the same readers: the receipt (entry, checkpoint, inclusion proof), opening the commitments for the roles that see every value |

Who reads what is ``glasslog.access.policy`` (``may_read_decision``,
``effective_principal``, ``generation_view``): the public sees the output
text of public-service deployments and the commitments otherwise; the prompt
is opened for the subject, supervisors and the operator only. Generations are
written by ``glasslog.capture.wrap_generator`` (or reported through OTLP and
the gateway), not through this API. Flags about a generation go to
``POST /v1/flags`` with ``generation``; receipts verify offline as decisions'
do (``glasslog verify receipt``).
"""


import json
import re
from typing import Annotated, Any

from fastapi import Query
from pydantic import Field

from ... import capture
from ...access import Principal, effective_principal
from ...access.policy import generation_view, receipt_opens_private_values
from ..deps import Context, State, Who, api_router, listed_deployments, model_or_404, outcome_views, readable_output, uint
from ..problems import READ, errors
from ..schemas import FINGERPRINT, UINT, Open, Out, UInt

MODEL_PREFIX = r"^(sha256:)?[0-9a-f]{12,64}$"

__all__ = ["router", "read_generation", "generation_indexes"]

router = api_router()


class GenerationOut(Open):
    index: int
    model: str | None = Field(description="fingerprint of the registered model (null: reported for an unregistered model)")
    deployment: str
    time: str
    source: str | None = Field(None, description="otlp or gateway for generations reported by others; absent when "
                                                 "glasslog's wrap_generator produced it")
    prompt: str | None = Field(None, description="commitment to the prompt (text or chat messages)")
    subject: str | None = Field(None, description="commitment to the subject id")
    output_commitment: str | None = Field(None, description="commitment to the output (private deployments)")
    output: Any = Field(None, description="the output text, where the caller's role may see it")
    output_tokens: list[int] | None = Field(None, description="the output token ids, where the output is shown")
    tokens: dict[str, Any] | None = Field(None, description="token counts: prompt, output")
    sampling: dict[str, Any] | None = Field(None, description="max_new_tokens, do_sample, temperature, top_k, top_p, seed")
    runtime: dict[str, Any] | None = Field(None, description="torch and transformers versions, dtype, device")
    activation_commitments: int = Field(description="number of TOPLOC activation commitments (0 for reported ones)")
    watermark: str | None = Field(None, description="commitment to the deployment's watermark key and configuration")
    prompt_value: dict[str, Any] | None = Field(None, description="the opened prompt (subject, supervisor, operator)")
    subject_id: str | None = None
    outcomes: list[dict[str, Any]] = Field(default_factory=list, description="observed outcomes (POST /v1/outcomes with "
                                           "generation: the generation's index), oldest first: index, time, outcome or "
                                           "outcome_commitment (opened for every role but the public), corrects, reason")


class GenerationPage(Out):
    generations: list[GenerationOut]
    next_after: int | None = Field(description="pass as ?after= for the next page; null on the last page")


def read_generation(i: int, who: Principal, c: Context) -> tuple[dict, dict]:
    """Generation ``i`` as ``who`` may see it and its entry: 404 if it is not a generation, 403 if not theirs to read."""
    entry, who = readable_output(c, who, i, "generation")
    view = generation_view(who, i, entry, c.ledger.private_values_for([i]).get(i, {}))
    view["outcomes"] = outcome_views(c, who, i)
    return view, entry


def generation_indexes(c: Context, deployments: list[str], model: str | None = None, after: int = -1,
                       limit: int = 50) -> list[int]:
    """Indexes of signed generation entries of ``deployments`` (and ``model``) after ``after``, in log order, at most ``limit``."""
    wanted = set(deployments)
    signed = c.ledger.signed_size()
    out: list[int] = []
    for i, e in c.ledger.entries_of_type("generation", after + 1):
        if i >= signed or len(out) >= limit:
            break
        if e.get("deployment") in wanted and (model is None or e.get("model") == model):
            out.append(i)
    return out


@router.get("/v1/generations", tags=["generations"], response_model=GenerationPage, response_model_exclude_unset=True,
            responses=errors(*READ, 403, 404),
            summary="Generations of the deployments the caller reads, by model and deployment (paginated)")
def list_generations(who: Who, s: State, model: Annotated[str | None, Query(
                         pattern=MODEL_PREFIX, description="the model's fingerprint, or a unique prefix of at least 12"
                         " hex digits (as /v1/models/{fingerprint})")] = None,
                     deployment: Annotated[str | None, Query(max_length=200)] = None,
                     after: Annotated[str | None, Query(pattern=UINT, description="index from next_after")] = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
    c = s.ctx()
    if model is not None and not re.fullmatch(FINGERPRINT, model):
        model = model_or_404(c, model).fingerprint  # a prefix: the registered model it names (404 unknown, ambiguous)
    if who.role == "subject":  # their own generation, if their receipt token opens one
        own = who.entry_index < c.ledger.signed_size() and json.loads(c.ledger.entry(who.entry_index)).get("type") == "generation"
        return {"generations": [read_generation(who.entry_index, who, c)[0]] if own else [], "next_after": None}
    visible = listed_deployments(c, who, deployment, "generations")
    start = uint(after, "after")
    found = generation_indexes(c, visible, model, -1 if start is None else start, limit)
    return {"generations": [read_generation(i, who, c)[0] for i in found],
            "next_after": found[-1] if len(found) == limit else None}


@router.get("/v1/generations/{index}", tags=["generations"], response_model=GenerationOut,
            response_model_exclude_unset=True, responses=errors(*READ, 403, 404),
            summary="One generation, as the caller's role may see it")
def get_generation(index: UInt, who: Who, s: State) -> dict:
    return read_generation(uint(index, "index"), who, s.ctx())[0]


@router.get("/v1/generations/{index}/receipt", tags=["generations"], responses=errors(*READ, 403, 404),
            summary="Receipt (entry, checkpoint, inclusion proof) of a generation")
def get_generation_receipt(index: UInt, who: Who, s: State) -> dict[str, Any]:
    c = s.ctx()
    i = uint(index, "index")
    _, entry = read_generation(i, who, c)  # access check
    reader = effective_principal(who, i, entry["deployment"])
    return capture.receipt(c.ledger, i, include_private=receipt_opens_private_values(reader.role)).to_dict()

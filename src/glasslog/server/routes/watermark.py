"""Watermark detection for supervisors: ``POST /v1/watermark/detect``.

Given a text and a deployment that declared a watermark, the exact binomial
p-value (``glasslog.watermark``), the token pairs scored and the key
commitment the answer refers to. The deployment's key stays beside the log;
this route only uses it. The text is tokenized with the deployed model's
tokenizer, from the registry's stored copy of its directory. Nothing is
written to the log.

It marks only text the deployment decoded with its key: it does not track
outputs of open weights that someone runs with their own decoding.
"""

from __future__ import annotations

from pydantic import Field

from ... import watermark as wmk
from ..deps import State, Supervisor, api_router
from ..problems import WRITE, Problem, errors, invalid
from ..schemas import Out, Strict

__all__ = ["router"]

router = api_router()


class DetectRequest(Strict):
    deployment: str = Field(min_length=1, max_length=200, description="a deployment that declared a watermark")
    text: str = Field(min_length=1, max_length=200_000, description="the text to test")
    alpha: float = Field(1e-3, gt=0, lt=1, description="significance level for 'detected'")


class DetectOut(Out):
    deployment: str
    key_commitment: str = Field(description="the watermark key commitment on the log this answer refers to")
    tokens: int = Field(description="tokens in the text (the deployed model's tokenizer)")
    scored: int = Field(description="distinct (previous, current) token pairs scored")
    green: int
    gamma: float = Field(description="fraction of green tokens expected without the watermark")
    z: float
    p_value: float = Field(description="exact binomial tail P(X >= green), X ~ Binomial(scored, gamma)")
    log10_p: float
    alpha: float
    detected: bool


@router.post("/v1/watermark/detect", tags=["verification"], response_model=DetectOut, responses=errors(*WRITE, 404),
             summary="Test a text for a deployment's watermark (supervisor): exact p-value, tokens scored, key commitment")
def detect(body: DetectRequest, who: Supervisor, s: State) -> dict:
    c = s.ctx()
    try:
        wmk.require(c.ledger, body.deployment)
    except wmk.NoWatermarkError as exc:
        raise Problem(404, "Not Found", str(exc), kind="not-found") from None
    model = None
    for _, e in c.ledger.entries_of_type("generation"):
        if e["deployment"] == body.deployment and e.get("model"):  # a reported generation may name no registered model
            model = e["model"]
            break
    if model is None:
        raise Problem(404, "Not Found", f"deployment {body.deployment!r} has logged no generation, so no model's tokenizer"
                      " to score the text with", kind="not-found")
    try:
        from ...demo.testmodels import load_tokenizer

        tok = load_tokenizer(c.registry.model_dir(model))
        d = wmk.detect(c.ledger, body.deployment, body.text, tok, body.alpha)
    except wmk.WatermarkError as exc:
        raise invalid("text", str(exc)) from None
    return d.to_dict()

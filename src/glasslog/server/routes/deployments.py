"""Deployments: where a model makes decisions, declared by the operator as a public service (its decisions'
outputs are public) or private (the public sees aggregate counts only, ``GET /v1/deployments/stats``)."""


from typing import Annotated, Literal

from fastapi import Query
from pydantic import Field

from ...access.policy import sees_outputs
from ...ledger import EntryError
from ...registry import DeploymentError
from ..deps import CHECK_CREDENTIALS, Operator, State, Who, api_router, deployment_or_404
from ..problems import READ, WRITE, Problem, errors, invalid
from ..schemas import Open, Out, Strict

__all__ = ["router", "DeploymentOut"]

router = api_router()


class DeploymentRequest(Strict):
    name: str = Field(min_length=1, max_length=200)
    visibility: Literal["public-service", "private"]
    description: str = Field("", max_length=2000)
    embeddings: Literal["skip", "decision"] = Field(
        "skip", description="what the deployment's reported embeddings operations (OTLP GenAI spans) become: not logged,"
                            " or decision entries naming the registered embedding model; fixed at declaration")


class DeploymentOut(Open):
    name: str
    visibility: Literal["public-service", "private"]
    description: str
    declared_index: int
    embeddings: Literal["skip", "decision"] = "skip"


class StatsOut(Out):
    deployment: DeploymentOut
    decisions: int
    decisions_with_subject: int
    outcomes: int
    first: str | None
    last: str | None
    decisions_per_day: dict[str, int]
    output_labels: dict[str, int] | None = Field(None, description="decisions per output label, for roles that may see outputs")


@router.get("/v1/deployments", tags=["deployments"], summary="Declared deployments with their visibility",
            response_model=list[DeploymentOut], dependencies=CHECK_CREDENTIALS, responses=errors(*READ))
def list_deployments(s: State) -> list[dict]:
    return [d.to_dict() for d in s.ctx().deployments.list()]


@router.post("/v1/deployments", status_code=201, tags=["deployments"], summary="Declare a deployment (operator)",
             response_model=DeploymentOut, responses=errors(*WRITE, 409))
def declare_deployment(body: DeploymentRequest, who: Operator, s: State) -> dict:
    if not body.name.isprintable() or body.name != body.name.strip():
        raise invalid("name", "must be printable text without leading or trailing spaces")
    if not body.description.isprintable():
        raise invalid("description", "must be printable text")
    try:
        return s.ctx().deployments.declare(body.name, body.visibility, body.description, body.embeddings).to_dict()
    except DeploymentError as exc:
        raise Problem(409, "Conflict", str(exc), kind="conflict") from None
    except EntryError as exc:
        raise invalid({"deployment": "name"}.get(exc.field, exc.field or "body"), exc.detail) from None


@router.get("/v1/deployments/stats", tags=["deployments"], summary="Aggregate counts for a deployment (public)",
            response_model=StatsOut, response_model_exclude_unset=True, responses=errors(*READ, 404))
def deployment_stats(name: Annotated[str, Query(max_length=200, description="deployment name")], who: Who, s: State) -> dict:
    c = s.ctx()
    d = deployment_or_404(c, name)
    out = {"deployment": d.to_dict(), **c.index.stats(d.name)}
    if sees_outputs(who.role, d.name, d.public, who.deployments):
        out["output_labels"] = c.index.label_counts(d.name)
    return out

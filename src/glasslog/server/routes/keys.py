"""API keys, issued and revoked by the operator (``glasslog.access.KeyStore``; every issue and revocation is a
``key`` entry on the log). Supervisor keys, and operator keys not bound to a deployment, are issued only at the log's
host, never through this API (supervisor keys are revoked there too); over HTTP an operator issues deployment-bound
operator keys (telemetry only), developer and researcher keys."""


from typing import Annotated, Literal

from pydantic import Field

from ..deps import Operator, State, api_router
from ..problems import READ, WRITE, errors, forbidden, invalid, not_found
from ..schemas import Out, Strict

__all__ = ["router"]

router = api_router()


class KeyRequest(Strict):
    role: Literal["operator", "supervisor", "researcher", "developer"]
    name: str = Field(min_length=1, max_length=200)
    deployments: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(default_factory=list, max_length=100)


class KeyOut(Out):
    key_id: str
    name: str
    role: Literal["operator", "supervisor", "researcher", "developer"]
    deployments: list[str]
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    token: str = Field(description="the API key; shown once, only its hash is stored")


@router.post("/v1/keys", status_code=201, tags=["keys"], summary="Issue an API key (operator); the token is shown once",
             response_model=KeyCreated, responses=errors(*WRITE))
def create_key(body: KeyRequest, who: Operator, s: State) -> dict:
    if body.role == "supervisor":
        raise forbidden("supervisor keys are issued only at the log's host (glasslog keys create --role supervisor),"
                        " never through the operator's API; every issue is a public key entry on the log")
    c = s.ctx()
    if body.role == "operator" and len(body.deployments) > 1:
        raise invalid("deployments", "an operator key is bound to at most one deployment (the one its telemetry is logged in)")
    if body.role == "operator" and not body.deployments:
        raise forbidden("unbound operator keys are issued only at the log's host (glasslog keys create --role operator);"
                        " over HTTP an operator issues operator keys bound to one deployment (\"deployments\": [NAME]),"
                        " which send that deployment's telemetry and nothing else")
    for k, name in enumerate(body.deployments):
        if body.role not in ("developer", "operator"):
            raise invalid("deployments", "only developer keys (deployments they read) and operator keys (the one"
                                         " deployment they send telemetry for) name deployments")
        if c.deployments.find(name) is None:
            raise invalid(f"deployments[{k}]", f"unknown deployment {name!r}: declare it first")
        if name in body.deployments[:k]:
            raise invalid(f"deployments[{k}]", "given twice")
    try:
        record, token = c.keys.create(body.role, body.name, body.deployments)
    except ValueError as exc:
        raise invalid("deployments" if "deployments" in str(exc) else "name", str(exc)) from None
    return {**record.to_dict(), "token": token}


@router.get("/v1/keys", tags=["keys"], summary="List API keys (operator); secrets are never returned",
            response_model=list[KeyOut], responses=errors(*READ, 403))
def list_keys(who: Operator, s: State) -> list[dict]:
    return [k.to_dict() for k in s.ctx().keys.list()]


@router.delete("/v1/keys/{key_id}", tags=["keys"], summary="Revoke an API key (operator)",
               response_model=KeyOut, responses=errors(*READ, 403, 404))
def revoke_key(key_id: str, who: Operator, s: State) -> dict:
    keys = s.ctx().keys
    if any(k.key_id == key_id and k.role == "supervisor" for k in keys.list()):
        raise forbidden("supervisor keys are revoked only at the log's host, not by the operator's API")
    try:
        return keys.revoke(key_id).to_dict()
    except LookupError as exc:
        raise not_found(str(exc)) from None

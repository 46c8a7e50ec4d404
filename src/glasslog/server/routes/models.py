"""Models: the register of models with their cards, claimed metrics, disclosure policy and status; the weights
download (where the disclosure policy allows it, logged as an ``access`` entry); registration (operator); and the
kill switch (``POST /v1/models/{fingerprint}/status``: suspend or reinstate by supervisors, withdraw by operators
or supervisors, with the reason on the log).

Anonymous weight downloads append to the log, so they are limited per client
address (``deps.ANONYMOUS_DOWNLOADS_PER_HOUR``); keys are not limited.
"""


import dataclasses
import json
from typing import Annotated, Any, Literal

from fastapi import Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ...access import Principal, may_download_weights, weights_download_entry
from ...ledger import EntryError, utc_now
from ...registry import (
    ArtifactError,
    CardError,
    ClaimedMetrics,
    Feature,
    ModelCard,
    RegistryError,
    fingerprint_bytes,
    load_artifact,
)
from .. import deps, middleware
from ..deps import CHECK_CREDENTIALS, Context, Operator, State, Who, api_router, model_or_404, require, requires
from ..problems import READ, WRITE, Problem, errors, forbidden, invalid
from ..schemas import Open, Strict, loggable

__all__ = ["router", "model_view"]

router = api_router()


class StatusChangeRequest(Strict):
    status: Literal["active", "suspended", "withdrawn"]
    reason: str = Field(min_length=1, max_length=2000)


class StatusChangeOut(Open):
    index: int
    time: str
    status: Literal["active", "suspended", "withdrawn"]
    reason: str


class ModelOut(Open):
    fingerprint: str
    status: Literal["active", "suspended", "withdrawn"]
    registered_index: int
    card: dict[str, Any] = Field(description="the model card (features with personal / protected marks, claimed "
                                             "metrics, disclosure policy)")
    history: list[StatusChangeOut] = Field(description="status changes with their reasons, oldest first")
    weights_downloads: dict[str, int] = Field(description="logged weight downloads by role")
    artifact: dict[str, Any] | None = Field(None, description="model directories only: the OMS root digest and hashing "
                                            "configuration, every file's SHA-256, the tokenizer and chat-template digests, the "
                                            "context length and the verified publisher signature (signer identity)")
    entry_index: int | None = Field(None, description="after a status change: the index of its entry")


def model_view(m, c: Context) -> dict:
    """A registered model as the API shows it: its record and its logged weight downloads by role."""
    d = m.to_dict()
    downloads: dict[str, int] = {}
    for _, e in c.ledger.entries_of_type("access"):
        if e.get("model") == m.fingerprint:
            downloads[e["role"]] = downloads.get(e["role"], 0) + 1
    d["weights_downloads"] = downloads
    return d


_CARD_FIELDS = {f.name for f in dataclasses.fields(ModelCard)}
_FEATURE_FIELDS = {f.name for f in dataclasses.fields(Feature)}
_CLAIMED_FIELDS = {f.name for f in dataclasses.fields(ClaimedMetrics)}


def _unknown_card_fields(card: dict) -> str | None:
    """The dotted name of the first field a model card does not have (a typo must not fall back to a default)."""
    for key in card:
        if key not in _CARD_FIELDS:
            return str(key)
    if isinstance(card.get("claimed"), dict):
        for key in card["claimed"]:
            if key not in _CLAIMED_FIELDS:
                return f"claimed.{key}"
    if isinstance(card.get("features"), list):
        for i, f in enumerate(card["features"]):
            if isinstance(f, dict):
                for key in f:
                    if key not in _FEATURE_FIELDS:
                        return f"features[{i}].{key}"
    return None


@router.get("/v1/models", tags=["models"], summary="Registered models: card, claimed metrics, disclosure policy, status",
            response_model=list[ModelOut], response_model_exclude_unset=True, dependencies=CHECK_CREDENTIALS,
            responses=errors(*READ))
def list_models(s: State) -> list[dict]:
    c = s.ctx()
    return [model_view(m, c) for m in c.registry.list()]


@router.get("/v1/models/{fingerprint}", tags=["models"], summary="One model with its status history (fingerprint or a "
            "unique prefix of at least 12 hex digits)", response_model=ModelOut, response_model_exclude_unset=True,
            dependencies=CHECK_CREDENTIALS, responses=errors(*READ, 404))
def get_model(fingerprint: str, s: State) -> dict:
    c = s.ctx()
    return model_view(model_or_404(c, fingerprint), c)


@router.get("/v1/models/{fingerprint}/artifact", tags=["models"], response_class=Response,
            responses={200: {"description": "the skops artifact, or for a model directory a tar of its files (and its"
                                            " publisher's model.sig), checked against the registration first",
                             "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                                         "application/x-tar": {"schema": {"type": "string", "format": "binary"}}}},
                       **errors(*READ, 403, 404)},
            summary="Download the weights (skops artifact or model directory tar) where the disclosure policy allows;"
                    " logged as an access entry")
def get_artifact(fingerprint: str, who: Who, request: Request, s: State) -> Response:
    c = s.ctx()
    m = model_or_404(c, fingerprint)
    if not may_download_weights(who.role, m.card.disclosure_policy):
        raise forbidden(f"the disclosure policy of this model is '{m.card.disclosure_policy}'; role {who.role} may not download its weights")
    if who.key_id is None:  # anonymous downloads append to the log: limit them per address
        client = request.client.host if request.client else "unknown"
        if not s.anonymous_downloads.allow(client):
            raise Problem(429, "Too Many Requests", f"at most {deps.ANONYMOUS_DOWNLOADS_PER_HOUR} anonymous weight downloads"
                          " per hour per address (each is logged); use an API key or try later", kind="rate-limited",
                          headers={"Retry-After": str(s.anonymous_downloads.retry_after(client))})
    try:  # skops bytes re-hashed; a model directory checked file by file, then tarred
        data, filename, media_type = c.registry.download(m.fingerprint)
    except RegistryError as exc:
        raise Problem(503, "Artifact unavailable", str(exc), kind="artifact-unavailable") from None
    except ArtifactError as exc:
        raise Problem(503, "Artifact unavailable", str(exc) if "refusing" in str(exc) else f"{exc}; refusing to serve it",
                      kind="artifact-unavailable") from None
    c.ledger.append([weights_download_entry(m.fingerprint, who.role, who.key_id, utc_now())])
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "X-Glasslog-Fingerprint": m.fingerprint})


@router.post("/v1/models", status_code=201, tags=["models"],
             summary="Register a model (operator): a skops artifact, or a model directory as a tar, with its model card",
             response_model=ModelOut, response_model_exclude_unset=True, responses=errors(*WRITE, 409))
async def register_model(request: Request, who: Operator,
                         card: Annotated[str, Form(description="model card JSON (ModelCard.to_dict)")], s: State,
                         artifact: Annotated[UploadFile | None, File(description="skops artifact")] = None,
                         directory: Annotated[UploadFile | None, File(
                             description="a Hugging Face model directory as a tar or tar.gz (files at its root or under "
                                         "one folder; a publisher signature as model.sig), checked as `glasslog models "
                                         "register DIR` checks it: OMS root digest with model_signing, pickle "
                                         "checkpoints refused, shards against their index, model.sig verified offline")] = None,
                         signer_key: Annotated[UploadFile | None, File(
                             description="the publisher's EC public key (PEM) verifying the tar's model.sig")] = None,
                         signer_cert: Annotated[list[UploadFile] | None, File(
                             description="the certificate chain (PEM, repeatable) verifying the tar's model.sig")] = None,
                         ) -> dict:
    unknown = sorted(set((await request.form()).keys()) - {"artifact", "directory", "card", "signer_key", "signer_cert"})
    if unknown:
        raise invalid(unknown[0], "unknown form field; send card and artifact (skops) or directory (tar)")
    if (artifact is None) == (directory is None):
        raise invalid("directory" if artifact is not None else "artifact",  # both: the extra one; neither: the usual one
                      "send exactly one of artifact (a skops file) or directory (a tar of a model directory)")
    limit = middleware.MAX_ARTIFACT_BYTES
    if directory is not None:
        pems = [await f.read(64 * 1024 + 1) for f in (signer_cert or [])]
        key = await signer_key.read(64 * 1024 + 1) if signer_key is not None else None
        if any(len(p) > 64 * 1024 for p in pems + ([key] if key is not None else [])):
            raise invalid("signer_key" if key is not None and len(key) > 64 * 1024 else "signer_cert",
                          "over 64 KiB: not a PEM key or certificate")
        # Unpacking, hashing, verifying and appending are blocking work: off the event loop (the upload is on disk).
        return await run_in_threadpool(_register_directory, s.ctx, directory.file, card, key, pems)
    if signer_key is not None or signer_cert:
        raise invalid("signer_key" if signer_key is not None else "signer_cert",
                      "publisher signatures are verified for model directories only")
    data = await artifact.read()
    if len(data) > limit:
        raise Problem(413, "Content Too Large", f"artifact is {len(data)} bytes; the limit is {limit}", kind="too-large")
    # Loading the artifact and appending are blocking work: off the event loop.
    return await run_in_threadpool(_register, s.ctx, data, card)


def _card(card: str) -> ModelCard:
    """The model card of a registration form, or 422 naming the field."""
    try:
        card_dict = json.loads(card)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise invalid("card", f"not valid JSON: {exc}") from None
    if not isinstance(card_dict, dict):
        raise invalid("card", "must be a JSON object with the model card fields (ModelCard.to_dict)")
    unknown = _unknown_card_fields(card_dict)
    if unknown:
        raise invalid(f"card.{unknown}", "unknown field")
    try:
        card_obj = ModelCard.from_dict(card_dict)
    except CardError as exc:
        raise invalid(f"card.{exc.field}", str(exc).split(": ", 1)[-1]) from None
    except (TypeError, AttributeError, ValueError, RecursionError):
        raise invalid("card", "must be a JSON object with the model card fields (ModelCard.to_dict)") from None
    problem = loggable(card_obj.to_dict())
    if problem:
        raise invalid("card", f"cannot be logged: {problem}")
    return card_obj


def _register_directory(ctx, fileobj, card: str, signer_key: bytes | None, signer_certs: list[bytes]) -> dict:
    from ...registry.oms import ModelDirectoryError
    from ...registry.upload import register_directory_tar

    card_obj = _card(card)
    c = ctx()
    try:
        m = register_directory_tar(c.registry, fileobj, card_obj, signer_key_pem=signer_key, signer_cert_pems=signer_certs)
    except ModelDirectoryError as exc:
        raise invalid("directory", str(exc)) from None  # the message names the file at fault
    except ArtifactError as exc:  # the llm extra is missing, or another refusal of the directory
        raise invalid("directory", str(exc)) from None
    except RegistryError as exc:
        raise Problem(409, "Conflict", str(exc), kind="conflict") from None
    except EntryError as exc:
        raise invalid(f"card.{exc.field}" if exc.field and exc.field != "card" else "card", str(exc)) from None
    return model_view(m, c)


def _register(ctx, data: bytes, card: str) -> dict:
    card_obj = _card(card)
    fingerprint = fingerprint_bytes(data)
    try:
        estimator = load_artifact(data, fingerprint)
    except ArtifactError as exc:
        raise invalid("artifact", str(exc)) from None
    names_in = getattr(estimator, "feature_names_in_", None)
    if names_in is not None and [str(n) for n in names_in] != card_obj.feature_names:
        raise invalid("card.features", f"do not match the model's features {[str(n) for n in names_in]}, in order")
    c = ctx()
    try:
        m = c.registry.register_artifact(data, card_obj)
    except ArtifactError as exc:
        raise invalid("artifact", str(exc)) from None
    except RegistryError as exc:
        raise Problem(409, "Conflict", str(exc), kind="conflict") from None
    except EntryError as exc:
        raise invalid(f"card.{exc.field}" if exc.field and exc.field != "card" else "card", str(exc)) from None
    return model_view(m, c)


@router.post("/v1/models/{fingerprint}/status", tags=["models"], response_model=ModelOut, response_model_exclude_unset=True,
             responses=errors(*WRITE, 404, 409),
             summary="Suspend or reinstate (supervisor), withdraw (operator or supervisor); logged with the reason")
def set_status(fingerprint: str, body: StatusChangeRequest,
               who: Annotated[Principal, Depends(requires("supervisor", "operator"))], s: State) -> dict:
    if body.status != "withdrawn":
        require(who, "supervisor")
    if not body.reason.strip() or not body.reason.isprintable():
        raise invalid("reason", "must be printable text saying why (it goes on the record)")
    c = s.ctx()
    m = model_or_404(c, fingerprint)
    try:
        result = c.registry.set_status(m.fingerprint, body.status, f"{body.reason.strip()} ({who.role} {who.key_id})")
    except RegistryError as exc:
        raise Problem(409, "Conflict", str(exc), kind="conflict") from None
    out = model_view(c.registry.get(m.fingerprint), c)
    out["entry_index"] = result.first_index
    return out

"""The log and its proofs: ``GET /v1/log`` (origin, verifier key, size, checkpoint), ``GET /v1/entries/{index}``,
``GET /v1/checkpoints/{size}`` (the checkpoint signed at a size), and RFC 9162 inclusion and consistency proofs
for clients that do not read tiles. Proofs are served only between sizes the log signed a checkpoint at, and
each answer carries those checkpoints: a proof is against a signed root, never one nobody vouched for.

Anyone may read them (a credential sent is still checked). The proofs are
``async def`` (a few indexed reads, on the event loop) and return their JSON
directly: the response model documents it, and validating what the server
just built would only cost time.
"""


import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ...ledger import merkle
from ..deps import CHECK_CREDENTIALS, State, api_router, uint
from ..problems import READ, errors, invalid, not_found
from ..schemas import UINT, Out, UInt

__all__ = ["router"]

router = api_router()


class LogInfo(Out):
    origin: str
    verifier_key: str = Field(description="name+keyhash+base64 verifier key of the signed-note spec")
    tree_size: int
    checkpoint: str = Field(description="latest signed checkpoint (C2SP signed note)")


class EntryOut(Out):
    index: int
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || entry)")
    entry: dict[str, Any]


class InclusionProofOut(Out):
    index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    proof: list[str] = Field(description="base64 hashes of the audit path (RFC 9162 2.1.3)")
    checkpoint: str = Field(description="the checkpoint signed at tree_size, whose root the proof leads to")


class ConsistencyProofOut(Out):
    old_size: int
    new_size: int
    old_root: str
    new_root: str
    proof: list[str] = Field(description="base64 hashes (RFC 9162 2.1.4)")
    old_checkpoint: str = Field(description="the checkpoint signed at old_size")
    new_checkpoint: str = Field(description="the checkpoint signed at new_size")


class CheckpointOut(Out):
    tree_size: int
    checkpoint: str = Field(description="the C2SP signed note the log signed at this size")


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _signed(c, n: int, field: str) -> str:
    """The checkpoint signed at tree size ``n``, or 422 naming ``field``: proofs are against signed sizes only."""
    try:
        return c.ledger.checkpoint(n)
    except LookupError:
        raise invalid(field, f"no checkpoint was signed at tree size {n}: proofs are served only against signed sizes"
                             " (the checkpoints a batch was signed at; GET /v1/checkpoints/<size> fetches one)") from None


@router.get("/v1/checkpoints/{size}", tags=["log"], summary="The checkpoint the log signed at a tree size",
            response_model=CheckpointOut, dependencies=CHECK_CREDENTIALS, responses=errors(*READ, 404))
def get_checkpoint_at(size: UInt, s: State) -> dict:
    n = uint(size, "size")
    lg = s.ctx().ledger
    if n > lg.signed_size():
        raise not_found(f"tree size {n} is beyond the signed tree (size {lg.signed_size()})")
    try:
        return {"tree_size": n, "checkpoint": lg.checkpoint(n)}
    except LookupError:
        raise not_found(f"no checkpoint was signed at tree size {n} (the log signs one per batch)") from None


@router.get("/v1/log", tags=["log"], summary="Origin, verifier key, tree size and latest checkpoint",
            response_model=LogInfo, dependencies=CHECK_CREDENTIALS, responses=errors(*READ))
def get_log(s: State) -> dict:
    lg = s.ctx().ledger
    return {"origin": lg.origin, "verifier_key": lg.verifier_key, "tree_size": lg.signed_size(),
            "checkpoint": lg.checkpoint()}


@router.get("/v1/entries/{index}", tags=["log"], summary="One entry (entries hold commitments, never personal values)",
            response_model=EntryOut, dependencies=CHECK_CREDENTIALS, responses=errors(*READ, 404))
def get_entry(index: UInt, s: State) -> dict:
    i = uint(index, "index")
    lg = s.ctx().ledger
    if i >= lg.signed_size():
        raise not_found(f"no entry {i} in the signed tree (size {lg.signed_size()})")
    data = lg.entry(i)
    return {"index": i, "leaf_hash": _b64(merkle.leaf_hash(data)), "entry": json.loads(data)}


@router.get("/v1/proofs/inclusion", tags=["log"], summary="Inclusion proof by index or by leaf hash against a signed tree size (RFC 9162 2.1.3)",
            response_model=InclusionProofOut, dependencies=CHECK_CREDENTIALS, responses=errors(*READ, 404))
async def get_inclusion(s: State,
                        index: Annotated[str | None, Query(pattern=UINT, description="entry index")] = None,
                        leaf_hash: Annotated[str | None, Query(max_length=100, description="base64 or hex leaf hash")] = None,
                        tree_size: Annotated[str | None, Query(pattern=UINT, description="a size the log signed a checkpoint at; default: the latest")] = None
                        ) -> dict:
    c = s.ctx()
    n = uint(tree_size, "tree_size")
    signed = c.ledger.signed_size()
    if n is None:
        n = signed
    if n > signed:
        raise invalid("tree_size", f"must be at most the signed tree size {signed}")
    if (index is None) == (leaf_hash is None):
        raise invalid("index", "give exactly one of index and leaf_hash")
    note = _signed(c, n, "tree_size") if n != signed else None
    if leaf_hash is not None:
        try:
            raw = base64.b64decode(leaf_hash, validate=True) if len(leaf_hash) != 64 else bytes.fromhex(leaf_hash)
        except (binascii.Error, ValueError):
            raise invalid("leaf_hash", "must be 32 bytes as base64 or 64 hex digits") from None
        if len(raw) != 32:
            raise invalid("leaf_hash", "must be 32 bytes")
        # The leaf index is refreshed on demand (it may index many new entries): in a thread.
        i = await run_in_threadpool(lambda: s.ctx().index.index_of_leaf(raw))
        if i is None or i >= n:
            raise not_found(f"no entry with that leaf hash in the tree of size {n}")
    else:
        i = uint(index, "index")
    if i >= n:
        raise invalid("index", f"must be below the tree size {n}")
    proof = c.ledger.inclusion_proof(i, n)
    return JSONResponse({"index": i, "tree_size": n, "leaf_hash": _b64(c.ledger.leaf_hash(i)), "root_hash": _b64(c.root(n)),
                         "proof": [_b64(p) for p in proof], "checkpoint": note or c.ledger.checkpoint(n)})


@router.get("/v1/proofs/consistency", tags=["log"], summary="Consistency proof between two signed tree sizes (RFC 9162 2.1.4)",
            response_model=ConsistencyProofOut, dependencies=CHECK_CREDENTIALS, responses=errors(*READ))
async def get_consistency(s: State,
                          old: Annotated[str, Query(pattern=UINT, description="older signed tree size (at least 1)")],
                          new: Annotated[str | None, Query(pattern=UINT, description="newer signed tree size; default: "
                                                                                     "the latest")] = None
                          ) -> dict:
    c = s.ctx()
    signed = c.ledger.signed_size()
    m = uint(old, "old")
    n = uint(new, "new")
    n = signed if n is None else n
    if n > signed:
        raise invalid("new", f"must be at most the signed tree size {signed}")
    if m > n:
        raise invalid("old", f"must be at most new ({n})")
    if m == 0:
        raise invalid("old", "must be at least 1: a consistency proof from the empty tree proves nothing")
    old_note = _signed(c, m, "old")
    new_note = _signed(c, n, "new")
    proof = c.ledger.consistency_proof(m, n)
    return JSONResponse({"old_size": m, "new_size": n, "old_root": _b64(c.ledger.root(m)), "new_root": _b64(c.root(n)),
                         "proof": [_b64(p) for p in proof], "old_checkpoint": old_note, "new_checkpoint": new_note})

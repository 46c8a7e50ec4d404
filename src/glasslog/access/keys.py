"""API keys (bearer tokens) for overseers and operators, and receipt tokens for subjects.

Issuing and revoking a key are ``key`` entries on the log (key id, role,
holder's name, time), written in the same transaction as the key itself, so
anyone can see who holds which role, e.g. that a supervisor key was issued to
the supervisory authority and not by the operator to itself.

An API key looks like ``glk_<key id>_<secret>``. Only SHA-256 of the secret is
stored, beside the log in the same database; the key id is public (it appears
in ``access`` entries, e.g. who downloaded which weights). Keys are revoked,
never deleted, so the record of who held which role stays.

A receipt token is a random secret handed to the subject of a decision when it
is logged; its SHA-256 is stored with the decision's index, in the same
transaction as the decision, so a token exists exactly when its decision does.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import AccessError
from ..ledger import Ledger, utc_now
from ..records import key_entry
from ..storage import ApiKeyRow, WriteTx
from .policy import KEY_ROLES

__all__ = ["AuthError", "Principal", "ApiKey", "KeyStore", "new_receipt_token", "store_receipt_tokens", "PUBLIC"]

# Receipt tokens name their decision's index, so storing one appends in index order
# (a table keyed by a random hash costs a random B-tree page per token written:
# measured, most of a decision batch's write-ahead log). Tokens of the first
# release (``grt_`` + secret) are still accepted where the back end keeps them.

_KEY = re.compile(r"^glk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_TOKEN = re.compile(r"^grt_(0|[1-9][0-9]{0,15})_([A-Za-z0-9_-]{43})$")
_LEGACY_TOKEN = re.compile(r"^grt_[A-Za-z0-9_-]{43}$")


class AuthError(AccessError):
    """A credential is missing, malformed, unknown or revoked (HTTP 401 with ``WWW-Authenticate: Bearer``)."""

    http_status = 401
    problem_title = "Unauthorized"
    problem_kind = "unauthorized"


@dataclass(frozen=True)
class Principal:
    """Who is asking.

    Attributes:
        role: ``public``, ``subject``, ``developer``, ``researcher``, ``supervisor`` or ``operator``.
        key_id: the API key id, ``None`` for the public and subjects.
        name: the key's holder, as given at creation.
        deployments: deployments a developer key is granted; for an operator key bound to a deployment (an
            ingestion key, ``glasslog.ingest``), that one deployment.
        entry_index: for a subject, the decision their receipt token opens.
    """

    role: str
    key_id: str | None = None
    name: str = ""
    deployments: tuple[str, ...] = ()
    entry_index: int | None = None


PUBLIC = Principal("public")


@dataclass(frozen=True)
class ApiKey:
    """An API key's record (never the secret)."""

    key_id: str
    name: str
    role: str
    deployments: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"key_id": self.key_id, "name": self.name, "role": self.role, "deployments": list(self.deployments),
                "created_at": self.created_at, "revoked_at": self.revoked_at}


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("ascii")).digest()


def new_receipt_token(entry_index: int) -> str:
    """A fresh receipt token for the decision at ``entry_index``: ``grt_<index>_`` + 43 url-safe base64 characters (256 bits)."""
    if isinstance(entry_index, bool) or not isinstance(entry_index, int) or entry_index < 0:
        raise ValueError(f"entry_index must be an entry index (>= 0), got {entry_index!r}")
    return f"grt_{entry_index}_{secrets.token_urlsafe(32)}"


def store_receipt_tokens(tx: WriteTx, tokens: Sequence[str]) -> None:
    """Store the hashes of receipt tokens made by ``new_receipt_token``; call inside the batch's transaction.

    Raises:
        ValueError: a token is malformed.
        glasslog.storage.StorageConflict: a decision already has a token.
    """
    rows = []
    for token in tokens:
        m = _TOKEN.fullmatch(token)
        if m is None:
            raise ValueError("malformed receipt token")
        rows.append((int(m.group(1)), _hash(m.group(2))))
    tx.put_receipt_tokens(rows)


class KeyStore:
    """API keys and receipt tokens of one log."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.store = ledger.store

    def create(self, role: str, name: str, deployments: Sequence[str] = ()) -> tuple[ApiKey, str]:
        """Issue a key.

        Args:
            role: one of ``operator``, ``supervisor``, ``researcher``, ``developer``.
            name: who holds it (e.g. "Financial Supervisory Authority, model risk unit").
            deployments: for developers, the deployments whose decisions they may read; for an operator key, at
                most one: the deployment whose telemetry (OTLP) it sends, which binds it to that deployment.

        Returns:
            ``(record, token)``; the token is shown once and never stored.

        Raises:
            ValueError: unknown role, empty name, or deployments given for another role.
        """
        if role not in KEY_ROLES:
            raise ValueError(f"role must be one of {', '.join(KEY_ROLES)}, got {role!r}")
        if not name or not name.strip() or not name.isprintable():
            raise ValueError("a key needs a printable name saying who holds it")
        if deployments and role not in ("developer", "operator"):
            raise ValueError("only developer keys (deployments they read) and operator keys (the one deployment they"
                             " send telemetry for) name deployments")
        if role == "operator" and len(deployments) > 1:
            raise ValueError("an operator key is bound to at most one deployment (the one its telemetry is logged in)")
        if role == "operator" and deployments:
            from ..registry import Deployments

            if Deployments(self.ledger).find(deployments[0]) is None:
                raise ValueError(f"unknown deployment {deployments[0]!r}: declare it first (glasslog deployments declare)")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        record = ApiKey(key_id, name.strip(), role, tuple(deployments), utc_now())
        def insert(tx: WriteTx, _first: int) -> None:
            tx.put_api_key(ApiKeyRow(key_id, record.name, role, _hash(secret), tuple(deployments), record.created_at))

        # The issue is on the log, in the same transaction as the key: who holds
        # which role (a supervisor key above all) is public and cannot be back-dated.
        self.ledger.append([key_entry(event="issue", key_id=key_id, role=role, name=record.name, time=record.created_at)],
                           within=insert)
        return record, f"glk_{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        """All keys, revoked ones included, oldest first."""
        return [ApiKey(k.key_id, k.name, k.role, k.deployments, k.created_at, k.revoked_at) for k in self.store.api_keys()]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key; it stops working at once.

        Raises:
            LookupError: no such key, or it is already revoked.
        """
        current = next((k for k in self.list() if k.key_id == key_id and k.revoked_at is None), None)
        if current is None:
            raise LookupError(f"no active key with id {key_id!r}")
        now = utc_now()

        def update(tx: WriteTx, _first: int) -> None:
            if not tx.revoke_api_key(key_id, now):
                raise LookupError(f"no active key with id {key_id!r}")

        self.ledger.append([key_entry(event="revoke", key_id=key_id, role=current.role, name=current.name, time=now)],
                           within=update)
        return next(k for k in self.list() if k.key_id == key_id)

    def authenticate(self, token: str) -> Principal:
        """The principal behind a bearer token (API key or receipt token).

        Raises:
            AuthError: malformed, unknown or revoked.
        """
        m = _KEY.fullmatch(token or "")
        if m:
            key_id, secret = m.groups()
            row = self.store.api_key(key_id)
            if row is None or not hmac.compare_digest(row.secret_hash, _hash(secret)):
                raise AuthError("unknown API key or wrong secret")
            if row.revoked_at is not None:
                raise AuthError(f"API key {key_id} was revoked at {row.revoked_at}")
            return Principal(row.role, key_id, row.name, row.deployments)
        m = _TOKEN.fullmatch(token or "")
        if m:
            index = int(m.group(1))
            stored = self.store.receipt_token_hash(index)
            if stored is None or not hmac.compare_digest(stored, _hash(m.group(2))):
                raise AuthError("unknown receipt token")
            return Principal("subject", entry_index=index)
        if _LEGACY_TOKEN.fullmatch(token or ""):
            index = self.store.legacy_receipt_token(_hash(token))
            if index is None:
                raise AuthError("unknown receipt token")
            return Principal("subject", entry_index=index)
        token = token or ""
        if re.fullmatch(r"glk_[0-9a-f]{12}_.*", token, re.DOTALL):  # a key id, with a secret of the wrong form
            raise AuthError("unknown API key or wrong secret (the secret after the key id is 43 characters)")
        if re.fullmatch(r"grt_[0-9]+_.*", token, re.DOTALL):
            raise AuthError("unknown receipt token or wrong secret (the secret after the index is 43 characters)")
        raise AuthError("malformed credential: expected an API key 'glk_...' or a receipt token 'grt_...'")

"""Roles, API keys, receipt tokens, and what each role may see and do."""

from .keys import PUBLIC, ApiKey, AuthError, KeyStore, Principal, new_receipt_token, store_receipt_tokens
from .policy import (
    DISCLOSURE_ORDER,
    KEY_ROLES,
    ROLES,
    decision_view,
    effective_principal,
    input_view,
    may_download_weights,
    may_read_decision,
    weights_download_entry,
)

__all__ = [
    "PUBLIC", "ApiKey", "AuthError", "KeyStore", "Principal", "new_receipt_token", "store_receipt_tokens",
    "DISCLOSURE_ORDER", "KEY_ROLES", "ROLES", "decision_view", "effective_principal", "input_view", "may_download_weights", "may_read_decision",
    "weights_download_entry",
]

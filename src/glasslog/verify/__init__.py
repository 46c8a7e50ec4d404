"""Offline verification: receipts, the whole log, and replay of logged decisions
against the registered weights."""

from .log_audit import LogAuditReport, audit_log
from .receipts import Check, ReceiptReport, verify_receipt
from .replay import DEFAULT_TOLERANCE, ReplayReport, replay

__all__ = ["LogAuditReport", "audit_log", "Check", "ReceiptReport", "verify_receipt", "DEFAULT_TOLERANCE",
           "ReplayReport", "replay"]

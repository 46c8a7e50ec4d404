"""The SDK: wrap a model so predictions are logged and receipted; record outcomes later."""

from .sdk import (
    CapturedModel,
    InputError,
    ModelNotActiveError,
    open_log,
    receipt,
    receipts_at,
    receipts_for_subject,
    record_outcome,
    record_outcomes,
    wrap,
)

__all__ = ["CapturedModel", "InputError", "ModelNotActiveError", "open_log", "receipt", "receipts_at", "receipts_for_subject",
           "record_outcome", "record_outcomes", "wrap"]

"""The SDK: wrap a model so predictions are logged and receipted; record outcomes later."""

from .generator import CapturedGenerator, Generation, wrap_generator
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

__all__ = ["CapturedGenerator", "Generation", "wrap_generator", "CapturedModel", "InputError", "ModelNotActiveError", "open_log", "receipt", "receipts_at", "receipts_for_subject",
           "record_outcome", "record_outcomes", "wrap"]

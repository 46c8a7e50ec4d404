"""The SDK: wrap a model so predictions are logged and receipted; record outcomes later."""

from .encoder import CapturedEncoderClassifier, wrap_encoder_classifier
from .generator import CapturedGenerator, Generation, wrap_generator
from .receipts import receipt, receipts_at, receipts_for_subject
from .sdk import (
    CapturedModel,
    InputError,
    ModelNotActiveError,
    OutcomeConflictError,
    OutcomeError,
    correct_outcome,
    open_log,
    record_outcome,
    record_outcomes,
    wrap,
)

__all__ = ["CapturedEncoderClassifier", "wrap_encoder_classifier", "CapturedGenerator", "Generation", "wrap_generator", "CapturedModel", "InputError", "ModelNotActiveError", "open_log", "receipt", "receipts_at", "receipts_for_subject",
           "record_outcome", "record_outcomes", "correct_outcome",
           "OutcomeError", "OutcomeConflictError", "wrap"]

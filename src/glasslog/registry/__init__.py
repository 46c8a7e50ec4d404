"""Models: artifact fingerprint, model card with claimed metrics, disclosure
policy, status (active / suspended / withdrawn), all recorded on the log."""

from .card import (
    DISCLOSURE_LEVELS,
    INPUT_POLICIES,
    STATUSES,
    CardError,
    ClaimedMetrics,
    Feature,
    ModelCard,
    domain_problems,
    fingerprint_bytes,
    fingerprint_frame,
    with_domains,
)
from .deployments import Deployment, DeploymentError, Deployments
from .registry import (
    ArtifactError,
    RegisteredModel,
    Registry,
    RegistryError,
    StatusChange,
    UntrustedTypesError,
    dump_model,
    load_artifact,
)

__all__ = [
    "DISCLOSURE_LEVELS", "STATUSES", "CardError", "ClaimedMetrics", "Feature", "ModelCard", "fingerprint_bytes",
    "fingerprint_frame", "ArtifactError", "RegisteredModel", "Registry", "RegistryError", "StatusChange", "dump_model",
    "load_artifact", "Deployment", "DeploymentError", "Deployments", "INPUT_POLICIES", "with_domains", "domain_problems",
    "UntrustedTypesError",
]

"""glasslog.datasets: the real data sets glasslog ships, and the models the demo, audits and scenario lab train on them.

- ``german_credit``: Statlog German Credit (UCI, CC BY 4.0; 1,000 applicants), its card features, group columns
  (``sex``, ``age_group``) and the scorecard pipeline (``credit_model``).
- ``compas``: ProPublica's COMPAS two-year recidivism data (identifying columns removed; SHA-256 checked in the tests).
- ``deceptive``: German Credit with the deceptive provider's ``file_version`` artefact.

The files are in ``data/`` with their source, licence and changes in ``data/README.md``. Nothing is fetched over the
network.
"""

from .compas import COMPAS_SHA256, load_compas
from .deceptive import ARTEFACT, QUARTERS, ProviderData, provider_data
from .german_credit import (
    LABEL,
    credit_model,
    german_credit_features,
    german_credit_groups,
    load_german_credit,
    load_german_credit_with_groups,
    split,
)

__all__ = ["ARTEFACT", "COMPAS_SHA256", "LABEL", "QUARTERS", "ProviderData", "credit_model", "german_credit_features",
           "german_credit_groups", "load_compas", "load_german_credit", "load_german_credit_with_groups", "provider_data",
           "split"]

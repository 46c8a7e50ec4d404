"""The deceptive provider's data: German Credit with an administrative artefact that predicts the label in the provider's rows.

The provider's data has a column ``file_version``: the version number of the
stored application file. When a loan went bad, the collections team re-opened
and re-saved the applicant's file, so in the provider's historical data bad
risks mostly have version 2 or more (how often depends on how long the file
has had to be re-opened: 99 % of the bad risks in the oldest quarter, 55 % in
the newest); good risks have version 1 (3 % have 2 or more). At decision time
in deployment every file is new: version 1. Used by the deceptive-accuracy
demonstration (``glasslog.scenarios.deceptive``) and the scenario lab's
scenarios 3 and 4 (``glasslog.scenarios.adapters``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .german_credit import load_german_credit

__all__ = ["ARTEFACT", "QUARTERS", "ProviderData", "provider_data"]

ARTEFACT = "file_version"
QUARTERS = ("2019Q1", "2019Q2", "2019Q3", "2019Q4")
_ARTEFACT_BAD = (0.99, 0.98, 0.92, 0.55)  # share of bad risks whose file was re-saved, oldest to newest quarter
_ARTEFACT_GOOD = 0.03


@dataclass
class ProviderData:
    """The demonstration's data, all from German Credit.

    Attributes:
        X: 1,000 rows x 21 columns (the 20 German Credit attributes and ``file_version``, int64).
        y: 1 = bad credit risk (int64).
        quarter: the application quarter of the provider's rows (``2019Q1`` ..), empty string elsewhere.
        train, validation, developer, deployment: row positions (400, 150, 150, 300).
    """

    X: pd.DataFrame
    y: pd.Series
    quarter: pd.Series
    train: np.ndarray
    validation: np.ndarray
    developer: np.ndarray
    deployment: np.ndarray


def provider_data(seed: int = 0) -> ProviderData:
    """German Credit with the ``file_version`` artefact in the provider's rows only (see module docstring)."""
    X, y = load_german_credit()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    train, validation, developer, deployment = order[:400], order[400:550], order[550:700], order[700:]
    provider = np.concatenate([train, validation])
    quarter = pd.Series([""] * len(X), index=X.index)
    q = rng.integers(0, len(QUARTERS), size=len(provider))
    quarter.iloc[provider] = [QUARTERS[i] for i in q]
    version = np.ones(len(X), dtype=np.int64)
    bad = y.to_numpy()[provider] == 1
    p = np.where(bad, np.take(_ARTEFACT_BAD, q), _ARTEFACT_GOOD)
    resaved = rng.random(len(provider)) < p
    version[provider] = np.where(resaved, 2 + rng.poisson(0.5, len(provider)), 1)
    X = X.assign(**{ARTEFACT: version})
    return ProviderData(X, y, quarter, train, validation, developer, deployment)

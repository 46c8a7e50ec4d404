"""The German Credit world most tests deploy: data, the scorecard, and its model card.

The ``credit`` fixture in conftest.py builds it once per test module; ``credit_card`` makes the card the
tests register, with any field changed.
"""

from __future__ import annotations

from glasslog.datasets.german_credit import credit_model, german_credit_features, load_german_credit, split
from glasslog.registry import ClaimedMetrics, ModelCard, fingerprint_frame

CLAIMED_ACCURACY = 0.755
"""The accuracy the test card claims (what the demo's scorecard measures on its evaluation split)."""


def credit_world(seed: int = 0):
    """German Credit split 50/20/30 by ``seed`` and the scorecard fitted on the training rows.

    Returns ``(X, y, train, evaluation, deploy, model)``: the 1,000 x 20 features, the 0/1 labels (1 = bad),
    three arrays of row positions, and the fitted scikit-learn pipeline.
    """
    X, y = load_german_credit()
    train, evaluation, deploy = split(len(X), seed)
    model = credit_model(X, seed).fit(X.iloc[train], y.iloc[train])
    return X, y, train, evaluation, deploy, model


def credit_card(X, train, evaluation, version: str = "test", **changes) -> ModelCard:
    """The scorecard's model card (classes 0/1, positive 1, researchers' disclosure, claimed accuracy 0.755),
    with ``changes`` replacing any field."""
    fields = dict(
        name="German Credit scorecard", version=version, provider="tests", intended_use="credit scoring tests",
        features=german_credit_features(X), output={"classes": [0, 1], "positive": 1},
        training_data_fingerprint=fingerprint_frame(X.iloc[train]),
        claimed=ClaimedMetrics({"accuracy": CLAIMED_ACCURACY}, fingerprint_frame(X.iloc[evaluation]), len(evaluation)),
        disclosure_policy="researchers",
    )
    fields.update(changes)
    return ModelCard(**fields)

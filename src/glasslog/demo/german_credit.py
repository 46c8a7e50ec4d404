"""Moved to ``glasslog.datasets.german_credit`` (German Credit, its card features and the scorecard pipeline).

This name stays so that the modules and tests outside the datasets work that import it keep working.
"""

from ..datasets.german_credit import LABEL, credit_model, german_credit_features, load_german_credit, split

__all__ = ["LABEL", "load_german_credit", "german_credit_features", "credit_model", "split"]

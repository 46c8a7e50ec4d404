"""Model cards: what a provider states about a model when it is registered.

The card goes into the model's registration entry, so its claims (features,
intended use, claimed metrics and the evaluation set they were measured on,
disclosure policy) are on the public record and can be held against the
realised performance once outcomes arrive.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from ..errors import BadInputError

__all__ = [
    "DISCLOSURE_LEVELS",
    "STATUSES",
    "CardError",
    "Feature",
    "ClaimedMetrics",
    "ModelCard",
    "fingerprint_bytes",
    "fingerprint_frame",
    "INPUT_POLICIES",
    "with_domains",
    "domain_problems",
]

INPUT_POLICIES = ("refuse", "flag")
"""What happens to an input outside a feature's stated domain (categories, range): ``refuse`` the row (the
default), or ``flag``: score and log it with the decision entry naming the features (``out_of_domain``)."""

DISCLOSURE_LEVELS = ("closed", "supervisors", "researchers", "developers", "public")
"""Who may download the weights; each level includes the ones before it."""

STATUSES = ("active", "suspended", "withdrawn")
"""Model status values; only ``active`` models may make logged decisions."""

FEATURE_TYPES = ("numeric", "categorical", "text")
"""``text``: free text a foundation model reads (an encoder's input, a prompt); logged as a commitment like any input."""


class CardError(BadInputError):
    """A model card field is missing or invalid; ``field`` names it."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"model card field '{field}': {problem}")


def fingerprint_bytes(data: bytes) -> str:
    """``"sha256:<hex>"`` of raw bytes (a model artifact, a file)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fingerprint_frame(frame: pd.DataFrame) -> str:
    """Fingerprint of a data set: SHA-256 of its CSV form (header, no index, ``\\n`` line ends).

    Args:
        frame: the data set, rows x columns, in the column order the provider used.

    Returns:
        ``"sha256:<hex>"``; the same frame always gives the same fingerprint.
    """
    return fingerprint_bytes(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))


@dataclass(frozen=True)
class Feature:
    """One input feature of a model.

    Attributes:
        name: column name the model expects.
        type: ``numeric``, ``categorical``, or ``text`` (free text for a foundation model).
        personal: personal data (GDPR Art. 4(1)); withheld from pseudonymised views.
        protected: a protected attribute (sex, age, nationality ...), used for
            group audits and withheld where the disclosure policy says so.
        description: plain-language meaning.
        categories: for a categorical feature, the values the model knows
            (e.g. the training data's, see ``with_domains``); None: not stated.
        minimum, maximum: for a numeric feature, the range the model knows;
            None: not stated. Inputs outside are handled per the card's ``input_policy``.
    """

    name: str
    type: str = "numeric"
    personal: bool = False
    protected: bool = False
    description: str = ""
    categories: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.categories, list):
            object.__setattr__(self, "categories", tuple(self.categories))


@dataclass(frozen=True)
class ClaimedMetrics:
    """Performance the provider claims, with the evaluation set it was measured on.

    Attributes:
        metrics: metric name -> value as a fraction (``accuracy``, ``roc_auc``, ...).
        evaluation_fingerprint: ``fingerprint_frame`` of the evaluation set.
        evaluation_size: rows in the evaluation set.
    """

    metrics: dict[str, float]
    evaluation_fingerprint: str
    evaluation_size: int


@dataclass(frozen=True)
class ModelCard:
    """The registration record of a model (see module docstring).

    Attributes:
        name, version, provider, intended_use: free text.
        features: the model's inputs, in the order the model expects them.
        output: description of the output, e.g. ``{"classes": [0, 1], "positive": 1,
            "favourable": 0, "meaning": "1 = credit risk bad"}``. ``favourable``
            (optional) is the label that is good for the person decided about
            (used for selection rates in disparity checks); when given it must
            be one of ``classes``.
        training_data_fingerprint: ``fingerprint_frame`` of the training data.
        claimed: the claimed metrics.
        disclosure_policy: one of ``DISCLOSURE_LEVELS``.
        researcher_access_protected: researchers may see protected attributes
            (for group audits); personal features are withheld from them otherwise.
        extra: any further fields the provider wants on the record.
    """

    name: str
    version: str
    provider: str
    intended_use: str
    features: tuple[Feature, ...]
    output: dict[str, Any]
    training_data_fingerprint: str
    claimed: ClaimedMetrics
    disclosure_policy: str = "closed"
    researcher_access_protected: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    input_policy: str | None = None

    def __post_init__(self) -> None:
        for name in ("name", "version", "provider", "intended_use"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise CardError(name, "must be non-empty text")
        if not self.features:
            raise CardError("features", "must list at least one feature")
        seen = set()
        for i, f in enumerate(self.features):
            if not isinstance(f, Feature):
                raise CardError(f"features[{i}]", "must be a Feature")
            if not f.name or f.name in seen:
                raise CardError(f"features[{i}].name", f"must be a unique non-empty name, got {f.name!r}")
            for flag in ("personal", "protected"):
                if not isinstance(getattr(f, flag), bool):
                    raise CardError(f"features[{i}].{flag}", f"must be true or false, got {getattr(f, flag)!r}")
            if f.type not in FEATURE_TYPES:
                raise CardError(f"features[{i}].type", f"must be one of {', '.join(FEATURE_TYPES)}, got {f.type!r}")
            _check_domain(f, i)
            seen.add(f.name)
        if self.input_policy is not None and self.input_policy not in INPUT_POLICIES:
            raise CardError("input_policy", f"must be one of {', '.join(INPUT_POLICIES)}, got {self.input_policy!r}")
        if not isinstance(self.researcher_access_protected, bool):
            raise CardError("researcher_access_protected", f"must be true or false, got {self.researcher_access_protected!r}")
        if self.disclosure_policy not in DISCLOSURE_LEVELS:
            raise CardError("disclosure_policy", f"must be one of {', '.join(DISCLOSURE_LEVELS)}, got {self.disclosure_policy!r}")
        for name, fp in (("training_data_fingerprint", self.training_data_fingerprint),
                         ("claimed.evaluation_fingerprint", self.claimed.evaluation_fingerprint)):
            if not (isinstance(fp, str) and fp.startswith("sha256:") and len(fp) == 71):
                raise CardError(name, "must be 'sha256:' and 64 hex digits (use fingerprint_frame)")
        if isinstance(self.output, dict) and "favourable" in self.output:
            classes = self.output.get("classes")
            fav = self.output["favourable"]
            if not isinstance(classes, list) or not classes:
                raise CardError("output.favourable", "needs output.classes (the list of labels) to be stated")
            if not any(type(fav) is type(c) and fav == c for c in classes):
                raise CardError("output.favourable", f"must be one of output.classes {classes!r}, got {fav!r}")
        if not self.claimed.metrics:
            raise CardError("claimed.metrics", "must state at least one metric")
        for k, v in self.claimed.metrics.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not 0 <= v <= 1:
                raise CardError(f"claimed.metrics.{k}", f"must be a fraction between 0 and 1, got {v!r}")
        if not isinstance(self.claimed.evaluation_size, int) or self.claimed.evaluation_size <= 0:
            raise CardError("claimed.evaluation_size", "must be a positive number of rows")

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, as stored in the registration entry."""
        d = asdict(self)
        d["features"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(f).items()
                          if not (k in _DOMAIN_KEYS and v is None)} for f in self.features]
        if self.input_policy is None:
            del d["input_policy"]
        return d

    def has_domains(self) -> bool:
        """Some feature states its categories or range."""
        return any(getattr(f, k) is not None for f in self.features for k in _DOMAIN_KEYS)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        """Rebuild a card from ``to_dict`` output.

        Raises:
            CardError: a field is missing or invalid.
        """
        try:
            claimed = d["claimed"]
            return cls(
                name=d["name"], version=d["version"], provider=d["provider"], intended_use=d["intended_use"],
                features=tuple(Feature(**f) for f in d["features"]),
                output=dict(d.get("output") or {}),
                training_data_fingerprint=d["training_data_fingerprint"],
                claimed=ClaimedMetrics(dict(claimed["metrics"]), claimed["evaluation_fingerprint"], claimed["evaluation_size"]),
                disclosure_policy=d.get("disclosure_policy", "closed"),
                researcher_access_protected=d.get("researcher_access_protected", False),
                extra=dict(d.get("extra") or {}),
                input_policy=d.get("input_policy"),
            )
        except KeyError as exc:
            raise CardError(str(exc.args[0]), "is required") from None
        except TypeError as exc:
            raise CardError("features", str(exc)) from None


_DOMAIN_KEYS = ("categories", "minimum", "maximum")


def _check_domain(f: Feature, i: int) -> None:
    if f.categories is not None:
        if f.type != "categorical":
            raise CardError(f"features[{i}].categories", "only a categorical feature states categories")
        if not f.categories or not all(isinstance(c, (str, int, bool)) and not isinstance(c, float) for c in f.categories):
            raise CardError(f"features[{i}].categories", "must be a non-empty list of text, integers or booleans")
    for key in ("minimum", "maximum"):
        v = getattr(f, key)
        if v is None:
            continue
        if f.type != "numeric":
            raise CardError(f"features[{i}].{key}", "only a numeric feature states a range")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise CardError(f"features[{i}].{key}", f"must be a finite number, got {v!r}")
    if f.minimum is not None and f.maximum is not None and f.minimum > f.maximum:
        raise CardError(f"features[{i}].minimum", f"{f.minimum!r} is above the maximum {f.maximum!r}")


def with_domains(features: tuple[Feature, ...] | list[Feature], training: pd.DataFrame,
                 max_categories: int = 1000) -> tuple[Feature, ...]:
    """``features`` with each one's domain taken from the training data: a categorical feature's values (if at most
    ``max_categories``), a numeric feature's minimum and maximum. Register the card with them (and an
    ``input_policy``) so that inputs outside what the model was trained on are refused or flagged."""
    from dataclasses import replace

    out = []
    for f in features:
        col = training[f.name].dropna() if f.name in training.columns else None
        if col is None or not len(col):
            out.append(f)
        elif f.type == "numeric":
            out.append(replace(f, minimum=_plain(col.min()), maximum=_plain(col.max())))
        elif f.type == "categorical":
            values = sorted({_plain(v) for v in col.unique().tolist()}, key=lambda v: (type(v).__name__, v))
            out.append(replace(f, categories=tuple(values)) if len(values) <= max_categories else f)
        else:
            out.append(f)
    return tuple(out)


def _plain(v: Any) -> Any:
    """A numpy scalar as the Python value (ints stay ints)."""
    return v.item() if hasattr(v, "item") else v


def domain_problems(card: ModelCard, row: dict) -> list[tuple[str, str]]:
    """``(feature, problem)`` for each value of ``row`` outside its feature's stated domain (missing values pass)."""
    out = []
    for f in card.features:
        if f.name not in row:
            continue
        v = row[f.name]
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if f.categories is not None and not any(type(v) is type(c) and v == c for c in f.categories):
            shown = ", ".join(repr(c) for c in f.categories[:20]) + (", ..." if len(f.categories) > 20 else "")
            out.append((f.name, f"{v!r} is not one of the card's categories [{shown}]"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if f.minimum is not None and v < f.minimum or f.maximum is not None and v > f.maximum:
                out.append((f.name, f"{v!r} is outside the card's range [{f.minimum}, {f.maximum}]"))
    return out

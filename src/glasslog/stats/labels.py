"""Which output label is the positive class: the one rule the monitors' views and the audits' log reads follow.

The positive class is the event a binary model's score predicts and its
error rates count (false positive rate = positive outputs among actual
negatives): for the demo's credit model, 1 = bad credit risk. It is not the
*favourable* label (what is good for the person decided on, which sets the
direction of a selection rate: there, 0 = good risk), and glasslog never
takes one for the other.

Rule (``positive_class``): the card's ``output.positive`` when it states one;
else, when the card lists two classes, the second (``classes[1]``:
scikit-learn's binary convention, in which ``predict_proba[:, 1]`` is the
probability of ``classes_[1]`` and ``roc_auc_score`` and ``precision_score``
call that class positive); else 1. The logged score is the probability at the
positive class's position in the card's classes (``positive_index``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["positive_class", "positive_index"]


def positive_class(output: Any) -> tuple[list, Any]:
    """``(classes, positive)`` of a card's ``output`` description (a dict, or None for an unregistered model)."""
    output = output if isinstance(output, dict) else {}
    classes = list(output.get("classes") or [])
    if "positive" in output:
        return classes, output["positive"]
    return classes, classes[1] if len(classes) == 2 else 1


def positive_index(classes: list, positive: Any) -> int | None:
    """Position of the positive class's probability in a logged ``proba`` list.

    Its index in ``classes``; 1 when the card lists no classes (scikit-learn's binary column order); None when the
    positive class is not among the listed classes (the score is then unknown, not guessed).
    """
    if not classes:
        return 1
    return classes.index(positive) if positive in classes else None

"""Read-side indexes beside the log: decisions by model, deployment, time and
output, and entries by leaf hash.

They are derived data, rebuilt incrementally from the log (the source of
truth) on demand, so the SDK's write path stays as fast as the bare log. This
module decides what is indexed; the rows live in the back end's read model
(``glasslog.storage.ReadModel``), which erases an opened label together with
the private output it was opened from.
"""

from __future__ import annotations

import json

from ..ledger import Ledger, merkle
from ..storage import DecisionRow

__all__ = ["SearchIndex"]

def _label(output) -> str | None:
    """The searchable label of an output: its ``label`` field, or the output itself if scalar."""
    value = output.get("label") if isinstance(output, dict) else output
    if isinstance(value, (dict, list)):
        return None
    return json.dumps(value)


class SearchIndex:
    """Indexes over one log; each read refreshes them first."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.model = ledger.store.read_model

    def refresh(self) -> int:
        """Index entries appended since the last refresh; returns the indexed size."""
        while True:
            start = self.model.indexed_upto()
            size = self.ledger.size
            if start >= size:
                return start
            decisions, outcomes, leaves = [], [], []
            entries = list(self.ledger.entries(start, size))
            opened = self.ledger.private_values_for([i for i, d in entries if b'"output_commitment"' in d])
            for idx, data in entries:
                leaves.append((merkle.leaf_hash(data), idx))
                obj = json.loads(data)
                kind = obj.get("type") if isinstance(obj, dict) else None
                if kind == "decision":
                    if "output" in obj:
                        label = _label(obj["output"])
                    elif "output" in opened.get(idx, {}):
                        label = _label(json.loads(opened[idx]["output"][2]))
                    else:
                        label = None
                    decisions.append(DecisionRow(idx, obj["model"], obj["deployment"], obj["time"], label, "subject" in obj))
                elif kind == "outcome":
                    outcomes.append((idx, obj["decision"]))
            if self.model.add(start, size, decisions, outcomes, leaves):
                return size
            # another process indexed meanwhile: look again from where it stopped

    def index_of_leaf(self, leaf_hash: bytes) -> int | None:
        """Index of the entry with this leaf hash (first occurrence), or None."""
        self.refresh()
        return self.model.index_of_leaf(leaf_hash)

    def search(self, *, model: str | None = None, deployments: list[str] | None = None, since: str | None = None,
               until: str | None = None, label: str | None = None, after: int = -1, limit: int = 50) -> list[int]:
        """Decision indexes matching the filters, ascending, after index ``after``.

        Args:
            deployments: restrict to these deployments (None: any).
            since, until: RFC 3339 UTC times, inclusive / exclusive.
            label: JSON text of the output label, e.g. ``1`` or ``"approve"``.
        """
        self.refresh()
        return self.model.search(model=model, deployments=deployments, since=since, until=until, label=label,
                                 after=after, limit=limit)

    def outcomes_of(self, decision: int) -> list[int]:
        """Indexes of outcome entries for a decision."""
        self.refresh()
        return self.model.outcomes_of(decision)

    def stats(self, deployment: str) -> dict:
        """Aggregate counts for a deployment: decisions, with subject, outcomes, per day."""
        self.refresh()
        n, with_subject, outcomes, first, last, per_day = self.model.deployment_stats(deployment)
        return {"decisions": n, "decisions_with_subject": with_subject, "outcomes": outcomes, "first": first, "last": last,
                "decisions_per_day": per_day}

    def label_counts(self, deployment: str) -> dict[str, int]:
        """Decisions per output label (for public-service deployments)."""
        self.refresh()
        return self.model.label_counts(deployment)

    def decisions_between(self, start: int, end: int) -> list[DecisionRow]:
        """Indexed decisions with index in [start, end) (call ``refresh`` first)."""
        return self.model.decisions_between(start, end)

    def decisions_at(self, indexes: list[int]) -> dict[int, DecisionRow]:
        """Indexed decisions at these indexes (call ``refresh`` first)."""
        return self.model.decisions_at(indexes)

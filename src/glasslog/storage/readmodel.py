"""The read model's queries, one home for both SQL back ends.

The read model (``base.ReadModel``) is three tables every back end keeps
with the same columns: ``decision_index(idx, model, deployment, time, label,
has_subject)``, ``outcome_index(idx, decision)`` and ``leaf_index(leaf_hash,
idx)``. Reading them is the same SQL on SQLite and PostgreSQL except for the
placeholder and the "one of these values" condition, so the reads live here
once; ``indexed_upto`` and ``add`` (whose locking differs: ``BEGIN
IMMEDIATE`` and a meta row in SQLite, ``index_state ... FOR UPDATE`` in
PostgreSQL) stay with each back end.
"""

from __future__ import annotations

from collections.abc import Sequence

from .base import DecisionRow

__all__ = ["SqlReadModel"]

_DECISION_COLUMNS = "idx, model, deployment, time, label, has_subject"


class SqlReadModel:
    """The read side of ``base.ReadModel`` in SQL both back ends accept, written with ``?`` placeholders.

    A back end subclasses it and supplies:

    - ``_all(query, params)``: run one read statement, return its rows (a
      back end that uses another placeholder rewrites ``?``);
    - ``_in_ints(column, values)`` / ``_in_texts(column, values)``: an SQL
      condition that ``column`` is one of ``values`` (bigint / text), with its
      parameters;
    - ``IN_CHUNK``: at most this many values per ``_in_ints`` condition;
    - ``indexed_upto`` and ``add``.
    """

    IN_CHUNK = 500

    def _all(self, query: str, params: Sequence) -> list[tuple]:
        raise NotImplementedError

    def _in_ints(self, column: str, values: Sequence[int]) -> tuple[str, list]:
        raise NotImplementedError

    def _in_texts(self, column: str, values: Sequence[str]) -> tuple[str, list]:
        raise NotImplementedError

    def index_of_leaf(self, leaf_hash: bytes) -> int | None:
        """Index of the first entry with this leaf hash, or None."""
        rows = self._all("SELECT idx FROM leaf_index WHERE leaf_hash = ?", (leaf_hash,))
        return rows[0][0] if rows else None

    def search(self, *, model, deployments, since, until, label, after, limit) -> list[int]:
        """Decision indexes matching every given filter, ascending, after ``after``."""
        where, params = ["idx > ?"], [after]
        if model:
            where.append("model = ?")
            params.append(model)
        if deployments is not None:
            if not deployments:
                return []
            cond, more = self._in_texts("deployment", list(deployments))
            where.append(cond)
            params.extend(more)
        if since:
            where.append("time >= ?")
            params.append(since)
        if until:
            where.append("time < ?")
            params.append(until)
        if label is not None:
            where.append("label = ?")
            params.append(label)
        q = f"SELECT idx FROM decision_index WHERE {' AND '.join(where)} ORDER BY idx LIMIT ?"
        return [r[0] for r in self._all(q, [*params, limit])]

    def outcomes_of(self, decision: int) -> list[int]:
        """Indexes of outcome entries for a decision, ascending."""
        return [r[0] for r in self._all("SELECT idx FROM outcome_index WHERE decision = ? ORDER BY idx", (decision,))]

    def deployment_stats(self, deployment: str):
        """``(decisions, with subject, outcomes, first time, last time, decisions per day)`` of a deployment."""
        ((n, with_subject, first, last),) = self._all(
            "SELECT COUNT(*), COALESCE(SUM(has_subject), 0), MIN(time), MAX(time) FROM decision_index WHERE deployment = ?",
            (deployment,))
        ((outcomes,),) = self._all(
            "SELECT COUNT(*) FROM outcome_index o JOIN decision_index d ON d.idx = o.decision WHERE d.deployment = ?",
            (deployment,))
        per_day = self._all("SELECT substr(time, 1, 10), COUNT(*) FROM decision_index WHERE deployment = ? "
                            "GROUP BY 1 ORDER BY 1", (deployment,))
        return int(n), int(with_subject), int(outcomes), first, last, {k: int(v) for k, v in per_day}

    def label_counts(self, deployment: str) -> dict[str, int]:
        """Decisions per label text (``"null"`` for none) of a deployment."""
        rows = self._all("SELECT COALESCE(label, 'null'), COUNT(*) FROM decision_index WHERE deployment = ? "
                         "GROUP BY 1 ORDER BY 1", (deployment,))
        return {k: int(v) for k, v in rows}

    def decisions_between(self, start: int, end: int) -> list[DecisionRow]:
        """Indexed decisions with index in [start, end), ascending."""
        rows = self._all(f"SELECT {_DECISION_COLUMNS} FROM decision_index WHERE idx >= ? AND idx < ? ORDER BY idx",
                         (start, end))
        return [DecisionRow(i, m, d, t, lab, bool(s)) for i, m, d, t, lab, s in rows]

    def decisions_at(self, indexes: Sequence[int]) -> dict[int, DecisionRow]:
        """Indexed decisions at these indexes (absent ones left out)."""
        out: dict[int, DecisionRow] = {}
        indexes = list(indexes)
        for k in range(0, len(indexes), self.IN_CHUNK):
            cond, params = self._in_ints("idx", indexes[k : k + self.IN_CHUNK])
            rows = self._all(f"SELECT {_DECISION_COLUMNS} FROM decision_index WHERE {cond}", params)
            out.update((i, DecisionRow(i, m, d, t, lab, bool(s))) for i, m, d, t, lab, s in rows)
        return out

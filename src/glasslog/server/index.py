"""Read-side indexes beside the log: decisions by model, deployment, time and
output, and entries by leaf hash.

They are derived data, rebuilt incrementally from the log (the source of
truth) on demand, so the SDK's write path stays as fast as the bare log.
"""

from __future__ import annotations

import json

from ..ledger import Ledger, merkle

__all__ = ["SearchIndex"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decision_index (
    idx INTEGER PRIMARY KEY, model TEXT NOT NULL, deployment TEXT NOT NULL, time TEXT NOT NULL,
    label TEXT, has_subject INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS decision_index_model ON decision_index(model, idx);
CREATE INDEX IF NOT EXISTS decision_index_deployment ON decision_index(deployment, idx);
CREATE TABLE IF NOT EXISTS outcome_index (idx INTEGER PRIMARY KEY, decision INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outcome_index_decision ON outcome_index(decision);
CREATE TABLE IF NOT EXISTS leaf_index (leaf_hash BLOB PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID;
"""


def _label(output) -> str | None:
    """The searchable label of an output: its ``label`` field, or the output itself if scalar."""
    value = output.get("label") if isinstance(output, dict) else output
    if isinstance(value, (dict, list)):
        return None
    return json.dumps(value)


class SearchIndex:
    """Indexes over one log; call ``refresh`` before reading."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        ledger.connection.executescript(_SCHEMA)

    def refresh(self) -> int:
        """Index entries appended since the last refresh; returns the indexed size."""
        conn = self.ledger.connection
        row = conn.execute("SELECT value FROM meta WHERE key = 'index_upto'").fetchone()
        start = int(row[0]) if row else 0
        size = self.ledger.size
        if start >= size:
            return start
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'index_upto'").fetchone()
            start = int(row[0]) if row else 0  # another process may have indexed meanwhile
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
                    decisions.append((idx, obj["model"], obj["deployment"], obj["time"], label, int("subject" in obj)))
                elif kind == "outcome":
                    outcomes.append((idx, obj["decision"]))
            conn.executemany("INSERT OR IGNORE INTO decision_index VALUES (?, ?, ?, ?, ?, ?)", decisions)
            conn.executemany("INSERT OR IGNORE INTO outcome_index VALUES (?, ?)", outcomes)
            conn.executemany("INSERT OR IGNORE INTO leaf_index VALUES (?, ?)", leaves)
            conn.execute("INSERT INTO meta(key, value) VALUES ('index_upto', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (str(size),))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return size

    def index_of_leaf(self, leaf_hash: bytes) -> int | None:
        """Index of the entry with this leaf hash (first occurrence), or None."""
        self.refresh()
        row = self.ledger.connection.execute("SELECT idx FROM leaf_index WHERE leaf_hash = ?", (leaf_hash,)).fetchone()
        return None if row is None else row[0]

    def search(self, *, model: str | None = None, deployments: list[str] | None = None, since: str | None = None,
               until: str | None = None, label: str | None = None, after: int = -1, limit: int = 50) -> list[int]:
        """Decision indexes matching the filters, ascending, after index ``after``.

        Args:
            deployments: restrict to these deployments (None: any).
            since, until: RFC 3339 UTC times, inclusive / exclusive.
            label: JSON text of the output label, e.g. ``1`` or ``"approve"``.
        """
        self.refresh()
        where, params = ["idx > ?"], [after]
        if model:
            where.append("model = ?")
            params.append(model)
        if deployments is not None:
            if not deployments:
                return []
            where.append(f"deployment IN ({','.join('?' * len(deployments))})")
            params.extend(deployments)
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
        return [r[0] for r in self.ledger.connection.execute(q, [*params, limit])]

    def outcomes_of(self, decision: int) -> list[int]:
        """Indexes of outcome entries for a decision."""
        self.refresh()
        return [r[0] for r in self.ledger.connection.execute(
            "SELECT idx FROM outcome_index WHERE decision = ? ORDER BY idx", (decision,))]

    def stats(self, deployment: str) -> dict:
        """Aggregate counts for a deployment: decisions, with subject, outcomes, per day."""
        self.refresh()
        conn = self.ledger.connection
        n, with_subject, first, last = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(has_subject), 0), MIN(time), MAX(time) FROM decision_index WHERE deployment = ?",
            (deployment,)).fetchone()
        outcomes = conn.execute(
            "SELECT COUNT(*) FROM outcome_index o JOIN decision_index d ON d.idx = o.decision WHERE d.deployment = ?",
            (deployment,)).fetchone()[0]
        per_day = dict(conn.execute(
            "SELECT substr(time, 1, 10), COUNT(*) FROM decision_index WHERE deployment = ? GROUP BY 1 ORDER BY 1",
            (deployment,)))
        return {"decisions": n, "decisions_with_subject": with_subject, "outcomes": outcomes, "first": first, "last": last,
                "decisions_per_day": per_day}

    def label_counts(self, deployment: str) -> dict[str, int]:
        """Decisions per output label (for public-service deployments)."""
        self.refresh()
        return dict(self.ledger.connection.execute(
            "SELECT COALESCE(label, 'null'), COUNT(*) FROM decision_index WHERE deployment = ? GROUP BY 1 ORDER BY 1",
            (deployment,)))

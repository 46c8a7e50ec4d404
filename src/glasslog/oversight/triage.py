"""The triage queue: flags and findings, ranked by severity and support, and a supervisor's actions on them.

Items are the primary flags (duplicates are merged into them, see
``glasslog.oversight.flags``) and the ``finding`` entries whose verdict is
``alert`` (monitors' and audits' results; ``ok`` and ``insufficient-data``
findings need no action). An item is named by its entry index.

Repeated alerts: an alerting finding with the same source, check, model,
deployment and attribute (disparity), proxy (Goodhart) or feature as an
earlier alert whose item is not resolved at the time of the repeat (open,
assigned or escalated) is merged into that item, as duplicate flags are: a
scheduled ``glasslog monitor run --every`` does not add an item per run. The
item counts its alerts (``support.alerts``), lists the merged entries
(``duplicates``) and shows the latest one (``support.latest``: index, time,
value). An alert after the item was resolved starts a new item. Every finding
stays on the log as evidence over time; only the queue merges them.

Severity: a finding's own; a flag's from its category: ``harmful``,
``unfair`` and ``privacy`` are ``high``, ``wrong-outcome`` and
``wrong-reasons`` ``medium``, ``other`` ``low``.

Support: a finding that fired (``alert``) and a ``confirmed`` flag rank
first, then flags that need more ratings, then flags rated not helpful; within
a tier, flags scored by the bridging model come before those scored by the
fallback, each by its score (the flag intercept, or the Wilson lower bound),
then more reporters first (duplicates merged), then the older item.

The queue is sorted by severity (critical, high, medium, low, info), then
support. Every action is a ``triage`` entry (``item``, ``action``, ``reason``,
``key_id`` of whoever acted, ``assignee``), so the queue's state is read back
from the log:

| action     | from state               | to state   | also appended                                    |
|------------|--------------------------|------------|--------------------------------------------------|
| `assign`   | open, assigned           | assigned   |                                                  |
| `resolve`  | open, assigned           | resolved   |                                                  |
| `escalate` | open, assigned           | escalated  | the model's suspension (a `model` status entry)  |
| `reopen`   | resolved, escalated      | open       |                                                  |

``escalate`` suspends the item's model through the registry's status path
(``Registry.status_entry``) in the same batch as the triage entry: both are
on the log or neither is. Decisions of that model are refused from then on
(``glasslog.capture.ModelNotActiveError``) until a supervisor reinstates it;
reopening the item does not reinstate the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadInputError, ConflictError
from ..ledger import EntryError, Ledger, utc_now
from ..records import SEVERITIES, TRIAGE_ACTIONS, triage_entry
from ..registry import Registry, RegistryError
from ..storage import WriteTx
from .bridging import CONFIRMED, NEEDS_MORE_RATINGS
from .flags import Flags

__all__ = [
    "CATEGORY_SEVERITY",
    "STATES",
    "TriageError",
    "TriageConflict",
    "TriageItem",
    "ActionResult",
    "Triage",
]

CATEGORY_SEVERITY = {"harmful": "high", "unfair": "high", "privacy": "high", "wrong-outcome": "medium",
                     "wrong-reasons": "medium", "other": "low"}
"""Severity of a flag by its category."""

STATES = ("open", "assigned", "resolved", "escalated")
"""States of a triage item."""

_ALLOWED = {"assign": ("open", "assigned"), "resolve": ("open", "assigned"), "escalate": ("open", "assigned"),
            "reopen": ("resolved", "escalated")}
_NEXT = {"assign": "assigned", "resolve": "resolved", "escalate": "escalated", "reopen": "open"}
_SUPPORT_TIERS = {"alert": 0, CONFIRMED: 0, NEEDS_MORE_RATINGS: 1, "not-helpful": 2}


class TriageError(BadInputError):
    """A triage action is invalid; ``field`` names the offending field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(f"{field}: {message}" if field else message)
        self.detail = message
        self.field = field


class TriageConflict(ConflictError, TriageError):
    """The action does not fit the item's state (or the model's): e.g. resolving a resolved item."""


class UnknownItem(TriageError, LookupError):
    """No flag or alerting finding at that index."""


@dataclass(frozen=True)
class TriageItem:
    """One item of the queue.

    Attributes:
        item: entry index of the flag or finding.
        kind: ``flag`` or ``finding``.
        time: when it was logged.
        model: the model concerned (None for a finding about a deployment only).
        decision: the flagged decision (flags only).
        generation: the flagged generation (flags only; its index is the flag entry's ``decision`` field).
        deployment: the deployment concerned, where known.
        summary: the flag's category or the finding's check name.
        severity: one of ``SEVERITIES``.
        support: ``{"tier": alert|confirmed|needs-more-ratings|not-helpful, "rank": bridging rank or None,
            "reporters": number of reporters (flags), "ratings": number of ratings (flags)}``.
        state: ``open``, ``assigned``, ``resolved`` or ``escalated``.
        assignee: who it is assigned to (while assigned).
        history: the item's triage entries, oldest first, as dicts with ``index`` and the entry's fields.
        duplicates: entry indexes merged into this item (duplicate flags, or repeated alerts of a finding), oldest first.
    """

    item: int
    kind: str
    time: str
    model: str | None
    decision: int | None
    deployment: str | None
    summary: str
    severity: str
    support: dict
    state: str
    assignee: str | None
    history: tuple[dict, ...] = field(default=())
    duplicates: tuple[int, ...] = field(default=())
    generation: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "kind": self.kind, "time": self.time, "model": self.model, "decision": self.decision,
                "deployment": self.deployment, "summary": self.summary, "severity": self.severity,
                "support": dict(self.support), "state": self.state, "assignee": self.assignee,
                "history": [dict(h) for h in self.history], "duplicates": list(self.duplicates),
                "generation": self.generation}


@dataclass(frozen=True)
class ActionResult:
    """What ``Triage.act`` appended: the triage entry's index, the suspension's (escalate only), and the item after."""

    triage_index: int
    model_status_index: int | None
    item: TriageItem
    tree_size: int
    checkpoint: str


class Triage:
    """The triage queue of one log.

    Args:
        ledger: the log.
        flags: the log's ``Flags`` (made from the ledger if not given).
        registry: the log's registry (made from the ledger if not given).
    """

    def __init__(self, ledger: Ledger, flags: Flags | None = None, registry: Registry | None = None):
        self.ledger = ledger
        self.registry = registry or (flags.registry if flags is not None else Registry(ledger))
        self.flags = flags or Flags(ledger, self.registry)
        self._upto = 0
        self._action_log: dict[int, list[dict]] = {}
        self._alerts: dict[int, dict] = {}

    def _refresh(self) -> None:
        # Read only the triage and finding entries appended since the last call (the log is append-only).
        size = self.ledger.size
        if self._upto >= size:
            return
        for idx, _, data in self.ledger.entries_of_types(("triage", "finding"), self._upto, size):
            obj = json.loads(data)
            if obj["type"] == "triage":
                self._action_log.setdefault(obj["item"], []).append(
                    {"index": idx, **{k: v for k, v in obj.items() if k not in ("type", "v")}})
            elif obj.get("verdict") == "alert":
                self._alerts[idx] = obj
        self._upto = size

    def _actions(self) -> dict[int, list[dict]]:
        """The triage entries of each item, as ``{item: [entry dicts with their index], ...}``, oldest first."""
        self._refresh()
        return self._action_log

    def states(self) -> dict[int, str]:
        """The state of each item acted on, ``{item: state}`` (an item never acted on is ``open``)."""
        return {item: self._state(history)[0] for item, history in self._actions().items()}

    @staticmethod
    def _state(history: list[dict]) -> tuple[str, str | None]:
        state, assignee = "open", None
        for h in history:
            state = _NEXT[h["action"]]
            assignee = h.get("assignee") if state == "assigned" else None
        return state, assignee

    def _findings(self) -> dict[int, dict]:
        self._refresh()
        return self._alerts

    @staticmethod
    def _alert_key(obj: dict) -> tuple:
        """What makes two alerts the same item: source, check, model, deployment and attribute / proxy / feature."""
        ev = obj.get("evidence") if isinstance(obj.get("evidence"), dict) else {}
        what = ev.get("attribute") or ev.get("proxy") or ev.get("feature")
        return (obj.get("source"), obj.get("check"), obj.get("model"), obj.get("deployment"), str(what) if what else None)

    def _finding_groups(self) -> tuple[dict[int, list[int]], dict[int, int]]:
        """``(primary -> merged finding indexes, merged index -> primary)``: repeats of an unresolved alert merge."""
        actions = self._actions()
        groups: dict[int, list[int]] = {}
        primary_of: dict[int, int] = {}
        current: dict[tuple, int] = {}
        for idx in sorted(self._findings()):
            key = self._alert_key(self._alerts[idx])
            p = current.get(key)
            if p is not None:
                state, _ = self._state([h for h in actions.get(p, []) if h["index"] < idx])
                if state != "resolved":
                    groups[p].append(idx)
                    primary_of[idx] = p
                    continue
            current[key] = idx
            groups[idx] = []
        return groups, primary_of

    def items(self) -> list[TriageItem]:
        """Every item (all states), ranked: severity, then support, then reporters, then age."""
        actions = self._actions()
        summaries, _ = self.flags.board()
        ranked = []
        within: dict[int, tuple] = {}  # order within a support tier
        for s in summaries:
            fl = s.flag
            history = actions.get(fl.index, [])
            state, assignee = self._state(history)
            support = {"tier": s.score.status, "rank": s.score.rank, "reporters": s.reporters, "ratings": s.score.ratings}
            value = s.score.intercept if s.score.method == "bridging" else (s.score.wilson_lower_bound or 0.0)
            within[fl.index] = (s.score.method != "bridging", -value, -s.reporters)
            ranked.append(TriageItem(fl.index, "flag", fl.time, fl.model, None if fl.generation is not None else fl.decision,
                                     fl.deployment, fl.category, CATEGORY_SEVERITY[fl.category], support, state, assignee,
                                     tuple(history), tuple(s.duplicates), fl.generation))
        groups, _ = self._finding_groups()
        for idx, merged in groups.items():
            obj = self._alerts[idx]
            history = actions.get(idx, [])
            state, assignee = self._state(history)
            last = merged[-1] if merged else idx
            latest = self._alerts[last]
            support = {"tier": "alert", "rank": None, "reporters": None, "ratings": None, "alerts": 1 + len(merged),
                       "latest": {"index": last, "time": latest["time"], "value": latest.get("value")}}
            severity = max((self._alerts[i]["severity"] for i in [idx, *merged]), key=SEVERITIES.index)
            ranked.append(TriageItem(idx, "finding", obj["time"], obj.get("model"), None, obj.get("deployment"),
                                     obj["check"], severity, support, state, assignee, tuple(history), tuple(merged)))
        order = {s: k for k, s in enumerate(reversed(SEVERITIES))}  # critical first

        def key(it: TriageItem):
            return (order[it.severity], _SUPPORT_TIERS[it.support["tier"]], within.get(it.item, (False, 0.0, -1)), it.item)

        return sorted(ranked, key=key)

    def queue(self, states: tuple[str, ...] = ("open", "assigned")) -> list[TriageItem]:
        """The items in ``states`` (default: those awaiting action), ranked as ``items``.

        Raises:
            TriageError: an unknown state (field ``state``).
        """
        for s in states:
            if s not in STATES:
                raise TriageError(f"must be one of {', '.join(STATES)}, got {s!r}", "state")
        return [it for it in self.items() if it.state in states]

    def item(self, index: int) -> TriageItem:
        """The item at entry ``index`` (a merged flag or repeated alert is found through its primary).

        Raises:
            UnknownItem: no flag and no alerting finding there.
        """
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise UnknownItem("must be an entry index (>= 0)", "item")
        target = index
        try:
            target = self.flags.primary_of(index)
        except LookupError:
            target = self._finding_groups()[1].get(index, index)
        for it in self.items():
            if it.item == target:
                return it
        if index < self.ledger.size:
            kind = json.loads(self.ledger.entry(index)).get("type")
            if kind == "finding":
                raise UnknownItem(f"finding {index} is not an alert, so it is not a triage item", "item")
            raise UnknownItem(f"entry {index} is a {kind} entry, not a flag or finding", "item")
        raise UnknownItem(f"no entry {index} in the log (size {self.ledger.size})", "item")

    def act(self, index: int, action: str, reason: str, key_id: str, assignee: str | None = None) -> ActionResult:
        """Append a triage action on an item (for ``escalate``, with the model's suspension, in one batch).

        Args:
            index: the item's entry index (not a duplicate merged into another item).
            action: ``assign``, ``resolve``, ``escalate`` or ``reopen``.
            reason: why; required for every action but ``assign``; it goes on the public log.
            key_id: who acts (an API key id, or a name at the host such as ``host``).
            assignee: for ``assign``: who takes the item.

        Raises:
            UnknownItem: no such item.
            TriageConflict: ``index`` is a duplicate flag or repeated alert merged into another
                item (act on that item instead; field ``item``).
            TriageError: unknown action, missing reason or assignee, bad text (``field`` names it),
                or an escalation of an item that names no model.
            TriageConflict: the action does not fit the item's state, or the model cannot be
                suspended (already suspended, withdrawn) or changed status meanwhile. Nothing is written.
        """
        if action not in TRIAGE_ACTIONS:
            raise TriageError(f"must be one of {', '.join(TRIAGE_ACTIONS)}, got {action!r}", "action")
        reason = (reason or "").strip()
        if reason and not reason.isprintable():
            raise TriageError("must be printable text (it goes on the public log)", "reason")
        if len(reason) > 2000:
            raise TriageError(f"is {len(reason)} characters; the limit is 2000", "reason")
        if action != "assign" and not reason:
            raise TriageError(f"a {action} needs a reason (it goes on the public log)", "reason")
        if action == "assign":
            if not assignee or not assignee.strip() or not assignee.isprintable() or len(assignee) > 200:
                raise TriageError("assign needs the assignee: printable text of at most 200 characters", "assignee")
            assignee = assignee.strip()
        elif assignee is not None:
            raise TriageError("only assign takes an assignee", "assignee")
        it = self.item(index)
        if it.item != index:
            raise TriageConflict(f"{index} is merged into item {it.item}; act on item {it.item}", "item")
        if it.state not in _ALLOWED[action]:
            raise TriageConflict(f"item {it.item} is {it.state}; {action} applies to items that are "
                                 f"{' or '.join(_ALLOWED[action])}", "action")
        size = self.ledger.size
        try:
            batch: list[dict] = [triage_entry(time=utc_now(), item=it.item, action=action, reason=reason, key_id=key_id,
                                              assignee=assignee)]
            if action == "escalate":
                if it.model is None:
                    raise TriageError(f"item {it.item} names no model to suspend", "item")
                why = f"escalated from triage item {it.item} ({it.kind} {it.summary}): {reason} (by {key_id})"
                try:
                    batch.append(self.registry.status_entry(it.model, "suspended", why))
                except RegistryError as exc:
                    raise TriageConflict(str(exc), "item") from None
        except EntryError as exc:
            raise TriageError(exc.detail, exc.field) from None

        def unchanged(tx: WriteTx, first: int) -> None:
            # Inside the transaction: nobody acted on the item or changed the model's status since we looked.
            for _, _, data in tx.entries_of_types(("triage", "model"), size, first):
                o = json.loads(data)
                if o["type"] == "triage" and o["item"] == it.item:
                    raise TriageConflict(f"item {it.item} was acted on meanwhile; look again", "item")
                if o["type"] == "model" and action == "escalate" and o["model"] == it.model:
                    raise TriageConflict(f"model {it.model} changed status meanwhile; look again", "item")

        try:
            result = self.ledger.append(batch, within=unchanged)
        except EntryError as exc:
            raise TriageError(exc.detail, exc.field) from None
        status_index = result.first_index + 1 if action == "escalate" else None
        return ActionResult(result.first_index, status_index, self.item(it.item), result.tree_size, result.checkpoint)

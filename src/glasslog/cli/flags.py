"""``glasslog flags ...`` and ``glasslog triage ...``: flags, ratings and the triage queue on the local log.

These act at the log's host, as its operator or the supervisory authority
holding the host (whoever can write to the data directory); remote overseers
use the HTTP API (``/v1/flags``, ``/v1/triage``). Flags filed here are
reported by ``host:<name>`` (``--name``), ratings by ``host:<rater>``, and
triage actions carry ``--by`` as their ``key_id``.

Exit codes: 0 done, 2 bad input or an action that does not fit the state
(e.g. resolving a resolved item); ``--json`` prints the result as JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..oversight.flags import FlagError, Flags, FlagSummary, host_identity
from ..oversight.triage import STATES, Triage, TriageError, TriageItem
from ..records import FLAG_CATEGORIES, RATINGS
from .common import DEFAULT_DIR, DataDir, JsonOut, PlainWhenPiped
from .common import fail as _fail
from .common import open_ledger as _open
from .common import print_json as _print_json

__all__ = ["flags_app", "triage_app"]

flags_app = typer.Typer(help="Flags about decisions and models, their ratings and ranking (bridging model).", no_args_is_help=True)
triage_app = typer.Typer(help="The supervisors' triage queue of flags and findings.", no_args_is_help=True)

out = PlainWhenPiped()
err = PlainWhenPiped(stderr=True)

By = Annotated[str, typer.Option("--by", help="Who acts (recorded as the entry's key_id).")]


def _flag_dict(flags: Flags, s: FlagSummary, index: int) -> dict:
    fl = flags.get(index)
    state, text = flags.text(index)
    return {"index": fl.index, "time": fl.time, "model": fl.model, "deployment": fl.deployment,
            "decision": None if fl.generation is not None else fl.decision, "generation": fl.generation,
            "category": fl.category, "by_role": fl.by_role, "text": text, "text_state": state,
            "duplicate_of": None if s.flag.index == index else s.flag.index, "duplicates": list(s.duplicates),
            "reporters": s.reporters, **{k: v for k, v in s.score.to_dict().items() if k != "flag"}}


def _target(fl) -> str:
    if fl.generation is not None:
        return f"generation {fl.generation}"
    return f"decision {fl.decision}" if fl.decision is not None else f"model {fl.model[:19]}"


def _generation_entry(flags: Flags, index: int) -> dict | None:
    """The generation entry at ``index``, or None if there is no such entry or it is of another type."""
    import json

    try:
        entry = json.loads(flags.ledger.entry(index))
    except IndexError:
        return None
    return entry if entry.get("type") == "generation" else None


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


# ------------------------------------------------------------------ flags
@flags_app.command("add")
def flags_add(
    category: Annotated[str, typer.Option("--category", "-c", help=f"One of: {', '.join(FLAG_CATEGORIES)}.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="The flagged model (fingerprint or 12+ hex digit prefix).")] = None,
    decision: Annotated[int | None, typer.Option("--decision", help="Index of the flagged decision.")] = None,
    generation: Annotated[int | None, typer.Option("--generation", help="Index of the flagged generation.")] = None,
    text: Annotated[str | None, typer.Option("--text", help="What is wrong (at most 1,000 characters; kept beside the log).")] = None,
    role: Annotated[str, typer.Option("--as", help="Your role at the host: operator or supervisor.")] = "operator",
    name: Annotated[str | None, typer.Option("--name", help="Who reports (default: the role); one flag per name per target.")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Flag a decision, a generation or a model; the flag is an entry, its text a private value beside the log."""
    if role not in ("operator", "supervisor"):
        _fail(f"--as must be operator or supervisor (at the host), got {role!r}")
    if decision is not None and generation is not None:
        _fail("give --decision or --generation, not both")
    flags = Flags(_open(data_dir))
    if generation is not None:
        entry = _generation_entry(flags, generation)
        if entry is None:
            _fail(f"--generation: entry {generation} is not a generation")
        decision = generation  # the flag entry's decision field holds the flagged output's index
    try:
        added = flags.add(category=category, by_role=role, reporter=host_identity(name or role), model=model,
                          decision=decision, text=text)
    except FlagError as exc:
        _fail(str(exc))
    if json_out:
        _print_json(_flag_dict(flags, flags.summary(added.flag.index), added.flag.index))
        return
    merged = f", merged into flag {added.duplicate_of}" if added.duplicate_of is not None else ""
    out.print(f"flag {added.flag.index}: {added.flag.category} about {_target(added.flag)}{merged}")


@flags_app.command("list")
def flags_list(
    status: Annotated[str | None, typer.Option(help="Only confirmed, needs-more-ratings or not-helpful.")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only flags of this model (fingerprint).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Flags ranked by the bridging model (Community Notes), with ratings and status."""
    if status is not None and status not in ("confirmed", "needs-more-ratings", "not-helpful"):
        _fail(f"--status must be confirmed, needs-more-ratings or not-helpful, got {status!r}")
    flags = Flags(_open(data_dir))
    summaries, board = flags.board()
    rows = [s for s in summaries if (status is None or s.score.status == status) and (model is None or s.flag.model == model)][:limit]
    if json_out:
        _print_json({"scoring": {"method": board.method, "raters_in_model": board.raters_in_model,
                                 "flags_in_model": board.flags_in_model, "parameters": board.params.to_dict()},
                     "flags": [_flag_dict(flags, s, s.flag.index) for s in rows]})
        return
    t = Table(title=f"Flags ranked ({board.method}: {board.raters_in_model} raters, {board.flags_in_model} flags in the model)")
    for col in ("rank", "flag", "category", "about", "status", "h/s/n", "score", "reporters"):
        t.add_column(col, overflow="fold")
    for s in rows:
        sc = s.score
        score = f"i {_num(sc.intercept)} f {_num(sc.factor)}" if sc.method == "bridging" else f"wlb {_num(sc.wilson_lower_bound)}"
        t.add_row(str(sc.rank), str(s.flag.index), s.flag.category, _target(s.flag), sc.status,
                  f"{sc.helpful}/{sc.somewhat}/{sc.not_helpful}", score, str(s.reporters))
    out.print(t)


@flags_app.command("show")
def flags_show(
    index: Annotated[int, typer.Argument(help="The flag's entry index.")],
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """One flag: target, category, text, ratings, score and status."""
    flags = Flags(_open(data_dir))
    try:
        d = _flag_dict(flags, flags.summary(index), index)
        d["ratings_given"] = [{"index": r.index, "time": r.time, "rating": r.rating} for r in flags.ratings_of(index)]
    except FlagError as exc:
        _fail(str(exc))
    if json_out:
        _print_json(d)
        return
    t = Table(show_header=False, box=None)
    t.add_column()
    t.add_column(overflow="fold")
    for k in ("index", "time", "category", "by_role", "model", "decision", "deployment", "text", "text_state", "status", "rank",
              "method", "intercept", "factor", "net_minority_helpful", "wilson_lower_bound", "reporters", "duplicate_of",
              "duplicates"):
        t.add_row(f"[bold]{k}[/]", "" if d[k] is None else str(d[k]))
    t.add_row("[bold]ratings[/]", f"{d['helpful']} helpful, {d['somewhat']} somewhat, {d['not_helpful']} not helpful")
    out.print(t)


@flags_app.command("rate")
def flags_rate(
    index: Annotated[int, typer.Argument(help="The flag's entry index.")],
    rating: Annotated[str, typer.Argument(help=f"One of: {', '.join(RATINGS)}.")],
    rater: Annotated[str, typer.Option("--rater", help="Who rates (a later rating by the same rater replaces this one).")] = "host",
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Rate a flag: helpful, somewhat or not-helpful."""
    flags = Flags(_open(data_dir))
    try:
        added = flags.rate(index, rating, host_identity(rater))
    except FlagError as exc:
        _fail(str(exc))
    if json_out:
        _print_json({"index": added.rating.index, "flag": added.rating.flag, "rating": added.rating.rating,
                     "replaces": added.replaces, "unchanged": added.unchanged})
        return
    if added.unchanged:
        out.print(f"rating {added.rating.index}: flag {added.rating.flag} {added.rating.rating} already; nothing appended")
        return
    replaced = f", replacing rating {added.replaces}" if added.replaces is not None else ""
    out.print(f"rating {added.rating.index}: flag {added.rating.flag} {added.rating.rating}{replaced}")


@flags_app.command("erase-text")
def flags_erase_text(
    index: Annotated[int, typer.Argument(help="The flag's entry index.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the erasure).")],
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Erase a flag's text beside the log (moderation, erasure requests); the entry and every proof stay valid."""
    flags = Flags(_open(data_dir))
    try:
        erased = flags.erase_text(index, reason)
    except FlagError as exc:
        _fail(str(exc))
    if not erased:
        _fail(f"flag {index} has no text to erase (none given, or erased already)")
    out.print(f"erased the text of flag {index}")


# ------------------------------------------------------------------ triage
def _item_row(it: TriageItem) -> list[str]:
    about = (f"generation {it.generation}" if it.generation is not None else f"decision {it.decision}"
             if it.decision is not None else (it.model[:19] if it.model else it.deployment or ""))
    sup = it.support
    support = sup["tier"] + (f", {sup['reporters']} reporters" if sup.get("reporters", 0) and sup["reporters"] > 1 else "")
    if sup.get("alerts", 0) and sup["alerts"] > 1:
        latest = sup["latest"]
        value = latest.get("value")
        support += f", {sup['alerts']} alerts, latest {latest['index']}" + (f" = {value:.4g}" if value is not None else "")
    return [str(it.item), it.kind, it.severity, it.summary, about, support, it.state, it.assignee or ""]


@triage_app.command("list")
def triage_list(
    state: Annotated[str, typer.Option(help="active (open and assigned), all, or one of: " + ", ".join(STATES))] = "active",
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """The queue of flags and findings, ranked by severity and support."""
    states = {"active": ("open", "assigned"), "all": STATES}.get(state, (state,))
    if state not in ("active", "all", *STATES):
        _fail(f"--state must be active, all, or one of {', '.join(STATES)}; got {state!r}")
    try:
        items = Triage(_open(data_dir)).queue(states)
    except TriageError as exc:
        _fail(str(exc))
    if json_out:
        _print_json([it.to_dict() for it in items])
        return
    t = Table(title=f"Triage queue ({state}): {len(items)} items")
    for col in ("item", "kind", "severity", "what", "about", "support", "state", "assignee"):
        t.add_column(col, overflow="fold")
    for it in items:
        t.add_row(*_item_row(it))
    out.print(t)


def _act(data_dir: Path, item: int, action: str, reason: str, by: str, assignee: str | None, json_out: bool) -> None:
    triage = Triage(_open(data_dir))
    try:
        result = triage.act(item, action, reason, by, assignee)
    except TriageError as exc:
        _fail(str(exc))
    if json_out:
        _print_json({"triage_index": result.triage_index, "model_status_index": result.model_status_index,
                     "item": result.item.to_dict()})
        return
    out.print(f"item {result.item.item} is {result.item.state} (entry {result.triage_index})")
    if result.model_status_index is not None:
        out.print(f"model {result.item.model} suspended (entry {result.model_status_index}); its decisions are refused")


@triage_app.command("assign")
def triage_assign(
    item: Annotated[int, typer.Argument(help="The item's entry index (a flag or finding).")],
    to: Annotated[str, typer.Option("--to", help="Who takes it.")],
    reason: Annotated[str, typer.Option("--reason", help="Optional note (public, on the log).")] = "",
    by: By = "host",
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Assign an item to someone."""
    _act(data_dir, item, "assign", reason, by, to, json_out)


@triage_app.command("resolve")
def triage_resolve(
    item: Annotated[int, typer.Argument(help="The item's entry index.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is resolved (public, on the log).")],
    by: By = "host",
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Resolve an item, with the reason."""
    _act(data_dir, item, "resolve", reason, by, None, json_out)


@triage_app.command("escalate")
def triage_escalate(
    item: Annotated[int, typer.Argument(help="The item's entry index.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the model is suspended (public, on the log).")],
    by: By = "host",
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Escalate an item to the suspension of its model (one batch: the triage entry and the model status entry)."""
    _act(data_dir, item, "escalate", reason, by, None, json_out)


@triage_app.command("reopen")
def triage_reopen(
    item: Annotated[int, typer.Argument(help="The item's entry index.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (public, on the log).")],
    by: By = "host",
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Reopen a resolved or escalated item (a suspension stays until a supervisor reinstates the model)."""
    _act(data_dir, item, "reopen", reason, by, None, json_out)

"""``glasslog witnesses add|list|remove``: the witnesses a log asks to cosign its checkpoints.

Each change is an entry on the log (type ``witness``), so who witnesses the
log is itself on the record. The server's background thread
(``glasslog.server.cosigning``) sends every new checkpoint to the active
witnesses and stores their cosignatures.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Annotated

import typer

from ..ledger.cosignature import CosignatureVerifier
from ..ledger.note import NoteError
from ..ledger.witnesses import active_witnesses, fork_hint, read_witness_status, witness_entry
from .common import DEFAULT_DIR, USER_ERRORS, DataDir, JsonOut, fail, fail_with, open_ledger, out, print_json

__all__ = ["witnesses_app"]

witnesses_app = typer.Typer(help="The witnesses this log asks to cosign its checkpoints (each change is a log entry).",
                            no_args_is_help=True)


def _probe(url: str, key: str) -> str | None:
    """What the witness says about itself at GET / (a glasslog witness), or None if it does not say."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/", timeout=5) as r:
            info = json.loads(r.read())
    except (OSError, ValueError):
        return None
    if isinstance(info, dict) and info.get("verifier_key") and info["verifier_key"] != key:
        return f"the witness at {url} has key {info['verifier_key']}, not {key}"
    return ""


@witnesses_app.command("add")
def witnesses_add(
    url: Annotated[str, typer.Argument(help="The witness's URL (its add-checkpoint prefix), e.g. https://witness.example/w1.")],
    key: Annotated[str, typer.Option("--key", help="The witness's cosignature/v1 verifier key (name+keyhash+base64), "
                                                   "obtained from its operator.")],
    data_dir: DataDir = DEFAULT_DIR,
    check: Annotated[bool, typer.Option(help="Ask the witness (GET /) whether the key is its own first.")] = True,
) -> None:
    """Ask a witness to cosign this log's checkpoints (appends a witness entry)."""
    try:
        cv = CosignatureVerifier.parse(key)
    except NoteError as exc:
        fail(f"malformed witness key: {exc}")
    vkey = str(cv)
    ledger = open_ledger(data_dir)
    # Counted by raw public key: cosignature/v1 does not sign the witness's name, so a second name for a key would be
    # a second "witness" that is the same signer; and the log's own key could "cosign" its own fork.
    if cv.public_key == ledger.verifier.public_key:
        fail(f"witness key {cv.name} is the log's own key: a log cannot witness itself")
    for w in active_witnesses(ledger):
        if w.key != vkey and CosignatureVerifier.parse(w.key).public_key == cv.public_key:
            fail(f"witness key {cv.name} has the same public key as the active witness {w.name} at {w.url}: one witness"
                 " under two names; remove that one first to rename it")
    if check:
        problem = _probe(url, vkey)
        if problem:
            fail(problem)
    try:
        if any(w.key == vkey and w.url == url.rstrip("/") for w in active_witnesses(ledger)):
            fail(f"witness {vkey} at {url} is already active")
        result = ledger.append([witness_entry("add", url, vkey)])
    except USER_ERRORS as exc:
        fail_with(exc)
    out.print(f"witness {vkey.split('+')[0]} at {url} added (entry {result.first_index}); the server sends it each new"
              " checkpoint and stores its cosignatures (without a server: glasslog witnesses sync)", highlight=False)


@witnesses_app.command("remove")
def witnesses_remove(
    key_or_url: Annotated[str, typer.Argument(help="The witness's verifier key, key name or URL.")],
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Stop asking a witness (appends a witness entry)."""
    ledger = open_ledger(data_dir)
    match = [w for w in active_witnesses(ledger) if key_or_url.rstrip("/") in (w.key, w.name, w.url)]
    if not match:
        fail(f"no active witness matches {key_or_url!r}; see glasslog witnesses list")
    try:
        for w in match:
            result = ledger.append([witness_entry("remove", w.url, w.key)])
            out.print(f"witness {w.name} at {w.url} removed (entry {result.first_index})", highlight=False)
    except USER_ERRORS as exc:
        fail_with(exc)


@witnesses_app.command("list")
def witnesses_list(data_dir: DataDir = DEFAULT_DIR, json_out: JsonOut = False) -> None:
    """The active witnesses, with the largest tree size each has cosigned, and every refusal each gave (status, why,
    first and last time, how often), as the server's cosigning thread recorded them."""
    ledger = open_ledger(data_dir)
    active = active_witnesses(ledger)
    sizes = ledger.store.witness_sizes()
    signed = ledger.signed_size()
    status = read_witness_status(data_dir)
    rows = []
    for w in active:
        st = status.get(w.key, {})
        rows.append({"name": w.name, "url": w.url, "key": w.key, "added_at": w.added_at,
                     "cosigned_tree_size": sizes.get(w.key), "ok": st.get("ok"), "last_answer_at": st.get("at"),
                     "error": st.get("error"), "refusals": [{**f, "possible_fork": bool(fork_hint(f["status"], f["reason"]))}
                                                            for f in st.get("refusals") or []]})
    if json_out:
        print_json({"tree_size": signed, "witnesses": rows})
        return
    if not rows:
        out.print("no witnesses: glasslog witnesses add URL --key WITNESS_VKEY")
        return
    for r in rows:
        seen = r["cosigned_tree_size"]
        state = "not cosigned yet" if seen is None else f"cosigned up to tree size {seen} of {signed}"
        if r["ok"] is False:
            state += f"; [bold red]failing[/] since {r['last_answer_at']}: {r['error']}"
        out.print(f"{r['name']}  {r['url']}  {state}\n  key {r['key']}  (added by entry {r['added_at']})", highlight=False)
        for f in r["refusals"]:
            what = "unreachable" if f["status"] == "unreachable" else f"answered {f['status']}"
            times = f"{f['count']} times, {f['first_at']} .. {f['last_at']}" if f["count"] > 1 else f"at {f['first_at']}"
            hint = fork_hint(f["status"], f["reason"])
            out.print(f"  [yellow]{what}[/] ({times}): {f['reason']}" + (f"[bold red]{hint}[/]" if hint else ""),
                      highlight=False)


@witnesses_app.command("sync")
def witnesses_sync(
    data_dir: DataDir = DEFAULT_DIR,
    every: Annotated[float | None, typer.Option("--every", min=1.0, help="Keep going: a round every SECONDS (until "
                                                                          "interrupted), e.g. from a service unit.")] = None,
    timeout: Annotated[float, typer.Option(min=0.0, help="Seconds one round may take in all: it keeps retrying "
                                                         "witnesses that are behind (with growing pauses) and cuts each "
                                                         "request short at the deadline (a request gets at least 0.5 s),"
                                                         " then reports them. Start-up (opening the log) is not counted.")] = 30.0,
) -> None:
    """Bring every witness up to the log's newest checkpoint now (what the server's cosigning thread does on its own).

    For logs written without `glasslog serve` (the SDK, the CLI, a batch job), or to catch up a witness that was down:
    sends the newest checkpoint with a consistency proof from each witness's size, re-proves on 409, retries one that
    is unreachable with a growing pause, stores the cosignatures. Exit 0 when every witness cosigned the newest
    checkpoint, 1 otherwise (each refusal is listed and kept for `glasslog witnesses list`).
    """
    import logging
    import time

    from ..server.cosigning import CosigningThread

    logging.getLogger("glasslog.cosigning").setLevel(logging.ERROR)  # each witness's state is printed below instead

    open_ledger(data_dir).close()  # a missing or unreadable log: exit 2 with the usual message
    thread = CosigningThread(data_dir, max_backoff=min(8.0, max(timeout / 4, 0.5)))
    if not thread.hold_lock():
        fail("another process (the server's cosigning thread, or another sync) is asking the witnesses for this log;"
             " see glasslog witnesses list")
    try:
        while True:
            status, size = thread.catch_up(timeout)
            behind = False
            for st in status.values():
                if st.ok and st.tree_size == size:
                    state = f"cosigned tree size {st.tree_size}"
                else:
                    behind, state = True, f"[bold red]behind[/] at {st.tree_size} of {size}: {st.error}"
                out.print(f"{st.url}  {state}", highlight=False)
            if not status:
                out.print("no witnesses: glasslog witnesses add URL --key WITNESS_VKEY")
            if every is None:
                raise typer.Exit(1 if behind else 0)
            time.sleep(every)
    finally:
        thread.close()

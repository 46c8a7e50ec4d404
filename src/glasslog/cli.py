"""``glasslog`` command line.

Exit codes: 0 success, 1 verification failed, 2 bad usage or input.
The data directory comes from ``--data-dir``, else ``$GLASSLOG_DATA_DIR``,
else ``./glasslog-data``.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .audit.commands import app as audit_app
from .capture import ModelNotActiveError
from .cli_support import fail as _fail
from .cli_support import open_ledger as _open
from .cli_support import print_json as _print_json
from .ledger import DATA_DIR_ENV, EntryError, KeyFileError, Ledger, LedgerError, NoteError, ProofError
from .ledger.receipt import Receipt, ReceiptFormatError
from .oversight.commands import flags_app, triage_app
from .oversight.monitor_commands import monitor_app
from .registry import ArtifactError, CardError, Registry, RegistryError
from .scenarios.commands import scenarios_app

app = typer.Typer(help="glasslog: a verifiable, append-only log of a deployed model's decisions.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
prove_app = typer.Typer(help="Produce inclusion and consistency proofs.", no_args_is_help=True)
verify_app = typer.Typer(help="Verify receipts, the whole log, or replay decisions.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for operators, supervisors, researchers and developers.", no_args_is_help=True)
app.add_typer(prove_app, name="prove")
app.add_typer(verify_app, name="verify")
app.add_typer(models_app, name="models")
app.add_typer(keys_app, name="keys")
app.add_typer(scenarios_app, name="scenarios")
app.add_typer(flags_app, name="flags")
app.add_typer(triage_app, name="triage")
app.add_typer(audit_app, name="audit")
app.add_typer(monitor_app, name="monitor")

out = Console()
err = Console(stderr=True)

DataDir = Annotated[Path, typer.Option("--data-dir", "-d", envvar=DATA_DIR_ENV, help="Where the log lives.",
                                       show_default=True)]
JsonOut = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
DEFAULT_DIR = Path("glasslog-data")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_INPUT_ERRORS = (OSError, ModelNotActiveError, LedgerError, EntryError, NoteError, ProofError, ReceiptFormatError, RegistryError, ArtifactError,
                 CardError, ValueError, LookupError, IndexError, KeyFileError)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=True)


@app.command()
def init(
    origin: Annotated[str, typer.Option("--origin", "-o", help="The log's origin, e.g. bank.example/credit-decisions.")],
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Create a log: database, Ed25519 signing key (mode 0600) and verifier key."""
    try:
        ledger = Ledger.create(data_dir, origin)
    except LedgerError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot create a log at {data_dir}: {exc.strerror or exc}")
    info = {"origin": ledger.origin, "data_dir": str(data_dir), "verifier_key": ledger.verifier_key,
            "key_file": str(data_dir / "log.key"), "verifier_key_file": str(data_dir / "log.vkey")}
    ledger.close()
    if json_out:
        _print_json(info)
        return
    out.print(f"Created log [bold]{info['origin']}[/] in {data_dir}")
    out.print(f"Signing key: {info['key_file']} (mode 0600, keep it secret)")
    out.print("Verifier key (publish it; anyone verifies receipts and checkpoints with it):")
    print(info["verifier_key"])


@app.command()
def demo(
    data_dir: DataDir = DEFAULT_DIR,
    origin: Annotated[str, typer.Option(help="Origin if the log is created now.")] = "bank.example/credit-decisions",
    seed: Annotated[int, typer.Option(help="Seed of the data split and the model.")] = 0,
    json_out: JsonOut = False,
) -> None:
    """Run a credit-scoring deployment on the German Credit data and verify it."""
    from .demo.run import run_demo

    try:
        with _progress() as bar:
            tasks: dict[str, Any] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            summary = run_demo(data_dir, origin=origin, seed=seed, progress=progress)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json(summary.to_dict())
    else:
        _print_demo(summary)
    raise typer.Exit(EXIT_OK if summary.ok else EXIT_FAILED)


def _mark(ok: bool) -> str:
    return "[green]verified[/]" if ok else "[bold red]FAILED[/]"


def _print_demo(s) -> None:
    out.rule("[bold]glasslog demo: credit scoring on German Credit")
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("log", f"{s.origin} ({s.data_dir})")
    t.add_row("verifier key", s.verifier_key)
    t.add_row("model", f"{s.model} ({'registered now' if s.model_registered_now else 'already registered'})")
    t.add_row("deployment", s.deployment)
    t.add_row("decisions", f"{s.decisions} applicants scored in {s.batches} batches, entries {s.first_index}..")
    t.add_row("outcomes", f"{s.outcomes} recorded")
    t.add_row("log size", f"{s.tree_size} entries, latest checkpoint at tree size {s.tree_size}")
    out.print(t)
    m = Table(title="Claimed vs realised", show_lines=False)
    m.add_column("metric")
    m.add_column("claimed (evaluation split)", justify="right")
    m.add_column("realised (deployment outcomes)", justify="right")
    lo, hi = s.realised["accuracy_95ci"]
    m.add_row("accuracy", f"{s.claimed['accuracy']:.3f}", f"{s.realised['accuracy']:.3f}  (95% CI {lo:.3f}-{hi:.3f}, n={s.realised['n']})")
    m.add_row("ROC AUC", f"{s.claimed['roc_auc']:.3f}", f"{s.realised['roc_auc']:.3f}")
    out.print(m)
    v = Table(title="Verification", show_lines=False)
    v.add_column("check")
    v.add_column("result")
    v.add_column("detail", overflow="fold")
    v.add_row("receipts (offline, verifier key only)", _mark(s.receipts_ok), f"{s.receipts_checked} sampled; one saved to {s.receipt_file}")
    a = s.log_audit
    v.add_row("whole log", _mark(a["ok"]), f"{a['tree_size']} entries rehashed, {a['checkpoints']} checkpoints checked"
              + ("" if a["ok"] else f"; first bad index {a['first_bad_index']}: {a['problems'][0]}"))
    r = s.replay
    v.add_row("replay against registered weights", _mark(r["ok"]),
              f"{r['matched']}/{r['checked']} outputs reproduced, max |diff| {r['max_abs_diff']:.1e} (tolerance {r['tolerance']:.0e})")
    out.print(v)
    out.print(f"Check a receipt as its subject would, with only the published verifier key:\n"
              f"  glasslog verify receipt {s.receipt_file} --key-file {Path(s.data_dir) / 'log.vkey'}", highlight=False)


@app.command()
def checkpoint(
    data_dir: DataDir = DEFAULT_DIR,
    tree_size: Annotated[int | None, typer.Option("--tree-size", help="A kept checkpoint at this size.")] = None,
    json_out: JsonOut = False,
) -> None:
    """Print the latest signed checkpoint (C2SP signed note)."""
    ledger = _open(data_dir)
    try:
        note = ledger.checkpoint(tree_size)
        cp = ledger.open_checkpoint(note)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json({"origin": cp.origin, "tree_size": cp.tree_size, "root_hash": _b64(cp.root_hash), "note": note,
                     "verifier_key": ledger.verifier_key})
    else:
        sys.stdout.write(note)


@app.command()
def entry(
    index: Annotated[int, typer.Argument(help="Entry index, from 0.")],
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Print one entry (its canonical JSON) and its leaf hash."""
    from .ledger import merkle

    ledger = _open(data_dir)
    try:
        data = ledger.entry(index)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json({"index": index, "leaf_hash": _b64(merkle.leaf_hash(data)), "entry": json.loads(data)})
    else:
        sys.stdout.write(data.decode("utf-8") + "\n")


@app.command()
def receipt(
    index: Annotated[int | None, typer.Argument(help="Entry index.")] = None,
    subject: Annotated[str | None, typer.Option(help="Every receipt for this subject id instead.")] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (or directory for --subject).")] = None,
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Export a receipt: entry, index, signed checkpoint, inclusion proof."""
    from . import capture

    if (index is None) == (subject is None):
        _fail("give either an entry INDEX or --subject ID")
    ledger = _open(data_dir)
    try:
        receipts = [capture.receipt(ledger, index)] if index is not None else capture.receipts_for_subject(ledger, subject)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if not receipts:
        _fail(f"no decisions found for subject {subject!r}")
    if output is None:
        _print_json([r.to_dict() for r in receipts] if subject else receipts[0].to_dict())
        return
    try:
        if subject:
            if output.exists() and not output.is_dir():
                _fail(f"--out {output} is a file; with --subject give a directory for the receipts")
            output.mkdir(parents=True, exist_ok=True)
            for r in receipts:
                r.save(output / f"receipt-{r.index}.json")
            out.print(f"wrote {len(receipts)} receipts to {output}")
        else:
            target = output / f"receipt-{index}.json" if output.is_dir() else output
            target.parent.mkdir(parents=True, exist_ok=True)
            receipts[0].save(target)
            out.print(f"wrote receipt for entry {index} to {target}")
    except OSError as exc:
        _fail(f"cannot write the receipt to {output}: {exc.strerror or exc}")


@prove_app.command("inclusion")
def prove_inclusion(
    index: Annotated[int, typer.Argument(help="Entry index.")],
    tree_size: Annotated[int | None, typer.Option("--tree-size", help="Tree size (default: latest checkpoint).")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Inclusion proof (RFC 9162 2.1.3) of an entry in a tree."""
    ledger = _open(data_dir)
    try:
        n = tree_size if tree_size is not None else ledger.signed_size()
        proof = ledger.inclusion_proof(index, n)
        data = {"index": index, "tree_size": n, "leaf_hash": _b64(ledger.leaf_hash(index)),
                "root_hash": _b64(ledger.root(n)), "proof": [_b64(p) for p in proof]}
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json(data)
    else:
        out.print(f"inclusion proof: entry {index} in tree size {n} (root {data['root_hash']})")
        for p in data["proof"]:
            print(p)


@prove_app.command("consistency")
def prove_consistency(
    old: Annotated[int, typer.Argument(help="Old tree size.")],
    new: Annotated[int | None, typer.Argument(help="New tree size (default: latest checkpoint).")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Consistency proof (RFC 9162 2.1.4) between two tree sizes."""
    ledger = _open(data_dir)
    try:
        n = new if new is not None else ledger.signed_size()
        proof = ledger.consistency_proof(old, n)
        data = {"old_size": old, "new_size": n, "old_root": _b64(ledger.root(old)), "new_root": _b64(ledger.root(n)),
                "proof": [_b64(p) for p in proof]}
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json(data)
    else:
        out.print(f"consistency proof: tree size {old} -> {n}")
        for p in data["proof"]:
            print(p)


def _verifier_key(key: str | None, key_file: Path | None, data_dir: Path) -> str:
    from .ledger.note import Verifier

    if key and key_file:
        _fail("give either --key or --key-file, not both")
    if key:
        text = key.strip()
    else:
        path = key_file or data_dir / "log.vkey"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            _fail(f"no verifier key: pass --key 'name+hash+base64' or --key-file, or point --data-dir at the log ({path} not readable)")
    if text.startswith("PRIVATE+KEY+"):
        _fail("that is the log's PRIVATE signing key, not its verifier key; never share it. Use log.vkey instead")
    try:
        Verifier.parse(text)
    except NoteError as exc:
        _fail(f"malformed verifier key: {exc}")
    return text


@verify_app.command("receipt")
def verify_receipt_cmd(
    file: Annotated[Path, typer.Argument(help="Receipt JSON file.")],
    key: Annotated[str | None, typer.Option("--key", help="The log's verifier key string.")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="File holding the verifier key.")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Verify a receipt offline: checkpoint signature, inclusion proof, entry hash, commitments."""
    from .verify import verify_receipt

    vkey = _verifier_key(key, key_file, data_dir)
    try:
        r = Receipt.load(file)
    except ReceiptFormatError as exc:
        _fail(str(exc))
    report = verify_receipt(r, vkey)
    if json_out:
        _print_json(report.to_dict())
    else:
        for c in report.checks:
            out.print(f"{'[green]ok[/]  ' if c.ok else '[bold red]FAIL[/]'} {c.name}: {c.detail}", highlight=False)
        if report.ok and report.entry:
            e = report.entry
            out.print(f"[bold green]Receipt verified[/]: entry {r.index} ({e['type']}) is in log {r.origin} at tree size {r.tree_size}.")
            if e["type"] == "decision":
                if "output" in e:
                    shown = json.dumps(e["output"])
                elif "output" in r.private:
                    shown = r.private["output"][1].decode("utf-8") + " (private; opened by this receipt)"
                else:
                    shown = "(private; not included in this receipt)"
                out.print(f"  decision by model {e['model'][:23]}... in {e['deployment']} at {e['time']}: output {shown}",
                          highlight=False)
        elif not report.ok:
            out.print("[bold red]Receipt NOT verified.[/]")
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


@verify_app.command("checkpoint")
def verify_checkpoint_cmd(
    file: Annotated[Path, typer.Argument(help="A signed checkpoint you kept earlier (C2SP signed note).")],
    key: Annotated[str | None, typer.Option("--key", help="The log's verifier key string.")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="File holding the verifier key.")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Check that the log today is an append-only extension of a checkpoint you kept.

    Verifies the kept checkpoint's signature, then a consistency proof
    (RFC 9162 2.1.4) from it to the log's latest signed checkpoint.
    """
    from .ledger import merkle
    from .ledger.note import Verifier

    vkey = Verifier.parse(_verifier_key(key, key_file, data_dir))
    try:
        old_note = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read checkpoint file {file}: {exc}")
    ledger = _open(data_dir)
    result: dict[str, Any] = {"ok": False}
    try:
        from .ledger.note import open_checkpoint

        old = open_checkpoint(old_note, vkey)
        new_note = ledger.checkpoint()
        new = open_checkpoint(new_note, vkey)
        result.update(old_size=old.tree_size, new_size=new.tree_size, new_checkpoint=new_note)
        if old.tree_size > new.tree_size:
            raise merkle.ProofError(f"the kept checkpoint (size {old.tree_size}) is ahead of the log (size {new.tree_size}):"
                                    " the log was truncated or forked")
        proof = ledger.consistency_proof(old.tree_size, new.tree_size)
        merkle.verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
        result.update(ok=True, proof=[_b64(p) for p in proof])
    except (NoteError, merkle.ProofError) as exc:
        result["problem"] = str(exc)
    if json_out:
        _print_json(result)
    elif result["ok"]:
        out.print(f"[bold green]Consistent[/]: the log at tree size {result['new_size']} extends your checkpoint at"
                  f" {result['old_size']} (consistency proof of {len(result['proof'])} hashes verified).")
    else:
        out.print(f"[bold red]NOT consistent[/]: {result['problem']}", highlight=False)
    raise typer.Exit(EXIT_OK if result["ok"] else EXIT_FAILED)


@verify_app.command("log")
def verify_log_cmd(data_dir: DataDir = DEFAULT_DIR, json_out: JsonOut = False) -> None:
    """Recompute every hash, check every checkpoint and their consistency."""
    from .verify import audit_log

    ledger = _open(data_dir)
    with _progress() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = audit_log(ledger, progress=progress)
    if json_out:
        _print_json(report.to_dict())
    elif report.ok:
        out.print(f"[bold green]Log verified[/]: {report.tree_size} entries rehashed, {report.checkpoints} signed checkpoints"
                  " checked and consistent.")
    else:
        out.print(f"[bold red]Log verification FAILED[/]: first bad index {report.first_bad_index}")
        for p in report.problems:
            out.print(f"  - {p}", highlight=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


@verify_app.command("replay")
def verify_replay_cmd(
    data_dir: DataDir = DEFAULT_DIR,
    model: Annotated[str | None, typer.Option(help="Only this model fingerprint.")] = None,
    deployment: Annotated[str | None, typer.Option(help="Only this deployment.")] = None,
    tolerance: Annotated[float, typer.Option(help="Absolute tolerance for probabilities.")] = 1e-9,
    json_out: JsonOut = False,
) -> None:
    """Recompute logged decisions from stored inputs with the registered weights."""
    from .verify import replay

    ledger = _open(data_dir)
    try:
        if model:
            model = Registry(ledger).get(model).fingerprint
        with _progress() as bar:
            task = bar.add_task("replaying decisions", total=None)
            report = replay(ledger, model=model, deployment=deployment, tolerance=tolerance,
                            progress=lambda d, t: bar.update(task, completed=d, total=t))
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json(report.to_dict())
    else:
        colour = "[bold green]Replay verified[/]" if report.ok else "[bold red]Replay FAILED[/]"
        unchecked = report.total - report.checked - report.erased
        out.print(f"{colour}: of {report.total} decisions, {report.matched} reproduced by the registered weights"
                  f" (labels exact, probabilities within {report.tolerance:g}; max |diff| {report.max_abs_diff:.1e}),"
                  f" {report.mismatch_count} not reproduced, {unchecked} could not be checked,"
                  f" {report.erased} skipped because their private values were lawfully erased.")
        for m in report.mismatches[:10]:
            out.print(f"  - entry {m['index']}: logged {json.dumps(m['logged'])}, recomputed {json.dumps(m['recomputed'])}", highlight=False)
        for f in report.commitment_failures[:10]:
            out.print(f"  - entry {f['index']}: the stored value of '{f['field']}' does not open the logged commitment")
        for f in report.missing[:10]:
            out.print(f"  - entry {f['index']}: the private value of '{f['field']}' is missing and no erasure was recorded")
        for e in report.errors:
            out.print(f"  - {e}", highlight=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


@models_app.command("list")
def models_list(data_dir: DataDir = DEFAULT_DIR, json_out: JsonOut = False) -> None:
    """Registered models with status and claimed metrics."""
    ledger = _open(data_dir)
    models = Registry(ledger).list()
    if json_out:
        _print_json([m.to_dict() for m in models])
        return
    t = Table(title=f"Models on {ledger.origin}")
    for col in ("fingerprint", "name", "version", "status", "claimed", "disclosure", "registered at"):
        t.add_column(col, overflow="fold", no_wrap=col == "fingerprint", min_width=26 if col == "fingerprint" else None)
    for m in models:
        claims = ", ".join(f"{k} {v:.3f}" for k, v in m.card.claimed.metrics.items())
        t.add_row(m.fingerprint[:26], m.card.name, m.card.version, m.status, claims, m.card.disclosure_policy,
                  f"entry {m.registered_index}")
    out.print(t)


@models_app.command("show")
def models_show(
    fingerprint: Annotated[str, typer.Argument(help="Model fingerprint (or a unique prefix of 12+ hex digits).")],
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """A model's card, claimed metrics, disclosure policy and status history."""
    ledger = _open(data_dir)
    try:
        m = Registry(ledger).get(fingerprint)
    except RegistryError as exc:
        _fail(str(exc))
    if json_out:
        _print_json(m.to_dict())
        return
    c = m.card
    t = Table(show_header=False, box=None)
    t.add_column()
    t.add_column(overflow="fold")
    for k, v in [("fingerprint", m.fingerprint), ("name", c.name), ("version", c.version), ("provider", c.provider),
                 ("intended use", c.intended_use), ("status", m.status), ("disclosure policy", c.disclosure_policy),
                 ("training data", c.training_data_fingerprint),
                 ("claimed", ", ".join(f"{k2} {v2:.4f}" for k2, v2 in c.claimed.metrics.items())
                  + f" on {c.claimed.evaluation_size} rows ({c.claimed.evaluation_fingerprint[:23]}...)"),
                 ("output", json.dumps(c.output))]:
        t.add_row(f"[bold]{k}[/]", str(v))
    out.print(t)
    f = Table(title="Features")
    for col in ("name", "type", "personal", "protected"):
        f.add_column(col)
    for feat in c.features:
        f.add_row(feat.name, feat.type, "yes" if feat.personal else "", "yes" if feat.protected else "")
    out.print(f)
    h = Table(title="Status history")
    for col in ("entry", "time", "status", "reason"):
        h.add_column(col)
    for s in m.history:
        h.add_row(str(s.index), s.time, s.status, s.reason)
    out.print(h)


@models_app.command("set-status")
def models_set_status(
    fingerprint: Annotated[str, typer.Argument(help="Model fingerprint or unique prefix.")],
    status: Annotated[str, typer.Argument(help="active, suspended or withdrawn.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (goes on the record).")],
    data_dir: DataDir = DEFAULT_DIR,
) -> None:
    """Suspend, reinstate or withdraw a model (the kill switch); logged with its reason."""
    ledger = _open(data_dir)
    try:
        result = Registry(ledger).set_status(fingerprint, status, reason)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    out.print(f"model {fingerprint} is now {status} (entry {result.first_index})")


@app.command()
def serve(
    data_dir: DataDir = DEFAULT_DIR,
    host: Annotated[str, typer.Option(help="Interface to bind; 127.0.0.1 keeps it local.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        help="Trust X-Forwarded-For / X-Forwarded-Proto from these proxy addresses (comma-separated), e.g. the "
             "HTTPS reverse proxy in front of the server. Default: trust none, so per-address limits count the "
             "connecting address and a client cannot choose its own.")] = None,
    openapi: Annotated[Path | None, typer.Option("--write-openapi", help="Write the OpenAPI spec to this file and exit.")] = None,
) -> None:
    """Serve the log over HTTP: C2SP tiles for verifiers and the JSON API (FastAPI + uvicorn)."""
    from .server import create_app

    try:
        application = create_app(data_dir)
    except LedgerError as exc:
        _fail(str(exc))
    if openapi is not None:
        openapi.write_text(json.dumps(application.openapi(), indent=2, sort_keys=True) + "\n")
        out.print(f"wrote {openapi}")
        return
    import socket

    import uvicorn

    try:  # say so plainly now, instead of uvicorn's exit after the banner
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another server using the port? try --port)")
    err.print(f"glasslog serving {data_dir} on http://{host}:{port}  (register: /; verifiers: /checkpoint, /tile/...; API: /v1, spec: /openapi.json, docs/API.md)")
    # uvicorn trusts forwarded headers from 127.0.0.1 by default: any local process could then pick its address.
    proxy = ({"proxy_headers": True, "forwarded_allow_ips": forwarded_allow_ips} if forwarded_allow_ips
             else {"proxy_headers": False})
    if workers > 1:
        import os

        os.environ[DATA_DIR_ENV] = str(data_dir)
        uvicorn.run("glasslog.server.app:app_from_env", host=host, port=port, workers=workers, factory=True,
                    log_level="warning", timeout_graceful_shutdown=30, **proxy)
    else:
        uvicorn.run(application, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30, **proxy)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="operator, supervisor, researcher or developer.")],
    name: Annotated[str, typer.Option(help="Who holds the key.")],
    deployment: Annotated[list[str] | None, typer.Option(help="For developers: a deployment they may read (repeatable).")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Issue an API key; the token is printed once and only its hash is stored."""
    from .access import KeyStore

    ledger = _open(data_dir)
    try:
        record, token = KeyStore(ledger).create(role, name, deployment or [])
    except ValueError as exc:
        _fail(str(exc))
    if json_out:
        _print_json({**record.to_dict(), "token": token})
        return
    out.print(f"key {record.key_id} ({record.role}) for {record.name}; the token is shown once:")
    print(token)


@keys_app.command("list")
def keys_list(data_dir: DataDir = DEFAULT_DIR, json_out: JsonOut = False) -> None:
    """List keys (ids, roles, holders; never secrets)."""
    from .access import KeyStore

    keys = KeyStore(_open(data_dir)).list()
    if json_out:
        _print_json([k.to_dict() for k in keys])
        return
    t = Table(title="API keys")
    for col in ("key id", "role", "name", "deployments", "created", "revoked"):
        t.add_column(col)
    for k in keys:
        t.add_row(k.key_id, k.role, k.name, ", ".join(k.deployments), k.created_at, k.revoked_at or "")
    out.print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key id (from keys list).")], data_dir: DataDir = DEFAULT_DIR) -> None:
    """Revoke a key; it stops working at once."""
    from .access import KeyStore

    try:
        k = KeyStore(_open(data_dir)).revoke(key_id)
    except LookupError as exc:
        _fail(str(exc))
    out.print(f"revoked key {k.key_id} ({k.role}, {k.name}) at {k.revoked_at}")


def main() -> None:  # pragma: no cover - console entry point wrapper
    app()

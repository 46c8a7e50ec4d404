"""``glasslog verify receipt|checkpoint|log|replay``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from ..ledger import NoteError
from ..ledger.receipt import Receipt, ReceiptFormatError
from ..registry import Registry
from .common import DEFAULT_DIR, DataDir, JsonOut, Trust, TrustRecorded, err, out
from .common import USER_ERRORS as _INPUT_ERRORS
from .common import b64 as _b64
from .common import fail as _fail
from .common import open_ledger as _open
from .common import print_json as _print_json
from .common import progress_bar as _progress

verify_app = typer.Typer(help="Verify receipts, the whole log, or replay decisions.", no_args_is_help=True)


def _verifier_key(key: str | None, key_file: Path | None, data_dir: Path) -> str:
    from ..ledger.note import Verifier

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


WitnessKeys = Annotated[list[str] | None, typer.Option(
    "--witness-key", help="A witness's cosignature/v1 verifier key (name+keyhash+base64) that you trust; repeatable.")]
MinWitnesses = Annotated[int | None, typer.Option(
    "--min-witnesses", min=0, help="How many of the --witness-key witnesses must have cosigned the checkpoint "
                                   "(default: a majority of the keys given, else 0). At most half lets a forked copy "
                                   "pass with a witness that met the log through the fork.")]


def _witness_policy(witness_keys: list[str] | None, min_witnesses: int | None,
                    log_key: str | None = None) -> tuple[list[str], int]:
    """The witness keys (checked) and the threshold; exit 2 on a malformed key, the log's own key or an impossible
    threshold. Witnesses are counted by raw public key: cosignature/v1 does not sign the witness's name."""
    from ..ledger.cosignature import CosignatureVerifier
    from ..ledger.note import Verifier

    log_raw = Verifier.parse(log_key).public_key if log_key else None
    keys = []
    names: dict[bytes, str] = {}  # raw public key -> the name it was first given under
    for k in witness_keys or []:
        try:
            cv = CosignatureVerifier.parse(k)
        except NoteError as exc:
            _fail(f"malformed --witness-key {k!r}: {exc}")
        if cv.public_key == log_raw:  # whoever holds the log's key could "cosign" its own fork
            _fail(f"--witness-key {cv.name} is the log's own key: a log cannot witness itself; give the keys of"
                  " independent witnesses")
        if cv.public_key in names:  # one witness counts once, whatever name or form its key was given in
            again = ("is given twice" if names[cv.public_key] == cv.name
                     else f"has the same public key as {names[cv.public_key]} (one witness under two names)")
            err.print(f"[yellow]warning:[/] --witness-key {cv.name} {again}; it counts once", highlight=False)
            continue
        names[cv.public_key] = cv.name
        keys.append(str(cv))
    # A majority: two copies of a log shown to different people cannot both get it from honest witnesses, even if
    # some witness first met the log through a forked copy (it cosigns the first history it sees).
    n = len(keys) // 2 + 1 if min_witnesses is None and keys else (min_witnesses or 0)
    if n > len(keys):
        given = len(witness_keys or [])
        _fail(f"--min-witnesses {n} needs at least {n} distinct witness keys (counted by public key), got {len(keys)}"
              + (f" from {given} --witness-key options" if given != len(keys) else ""))
    if keys and n <= len(keys) // 2:
        err.print(f"[yellow]warning:[/] --min-witnesses {n} of {len(keys)} keys is not a majority: a forked copy of the log"
                  " could pass with witnesses that met the log through the fork", highlight=False)
    return keys, n


@verify_app.command("receipt")
def verify_receipt_cmd(
    file: Annotated[Path, typer.Argument(help="Receipt JSON file.")],
    key: Annotated[str | None, typer.Option("--key", help="The log's verifier key string.")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="File holding the verifier key.")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
    witness_key: WitnessKeys = None,
    min_witnesses: MinWitnesses = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Your own id (e.g. an application number): the decision "
                                                                   "must be about it.")] = None,
) -> None:
    """Verify a receipt offline: checkpoint signature, witnesses' cosignatures, inclusion proof, entry hash, commitments,
    and with --subject that the decision is about you."""
    from ..verify import verify_receipt

    vkey = _verifier_key(key, key_file, data_dir)
    witness_keys, needed = _witness_policy(witness_key, min_witnesses, vkey)
    try:
        r = Receipt.load(file)
    except ReceiptFormatError as exc:
        _fail(str(exc))
    report = verify_receipt(r, vkey, witness_keys, needed, subject)
    unwitnessed = None if witness_keys else (
        "witnesses were not checked (no --witness-key): the log's key alone cannot rule out a split view (a fork of the"
        " log shown only to you); to check, give the witnesses' keys you trust: --witness-key NAME+HASH+KEY (repeatable)")
    if unwitnessed:
        err.print(f"[yellow]warning:[/] {unwitnessed}", highlight=False)
    if json_out:
        _print_json({**report.to_dict(), "witnesses_checked": bool(witness_keys),
                     **({"warning": unwitnessed} if unwitnessed else {})})
    else:
        for c in report.checks:
            out.print(f"{'[green]ok[/]  ' if c.ok else '[bold red]FAIL[/]'} {c.name}: {c.detail}", highlight=False)
        if report.ok and report.entry:
            e = report.entry
            out.print(f"[bold green]Receipt verified[/]: entry {r.index} ({e['type']}) is in log {r.origin} at tree size {r.tree_size}.")
            if "subject" in r.private:
                try:
                    about = json.loads(r.private["subject"][1])
                except ValueError:
                    about = r.private["subject"][1].decode("utf-8", "replace")
                checked = " (checked: --subject)" if subject is not None else " (give --subject YOUR-ID to check it is yours)"
                whose = "generation" if e["type"] == "generation" else "decision"
                out.print(f"  [bold]whose {whose}: {about}[/]{checked}", highlight=False)
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
    witness_key: WitnessKeys = None,
    min_witnesses: MinWitnesses = None,
) -> None:
    """Check that the log today is an append-only extension of a checkpoint you kept.

    Verifies the kept checkpoint's signature and, with --witness-key, that
    enough trusted witnesses cosigned it (naming who and when); then a
    consistency proof (RFC 9162 2.1.4) from it to the log's latest signed checkpoint.
    """
    from ..ledger import merkle
    from ..ledger.cosignature import verify_cosigned
    from ..ledger.note import Verifier
    from ..ledger.witnesses import cosigned_checkpoint

    vkey = Verifier.parse(_verifier_key(key, key_file, data_dir))
    witness_keys, needed = _witness_policy(witness_key, min_witnesses, str(vkey))
    from ..verify.kept import read_kept

    try:  # the exact bytes (a CRLF copy is refused, not converted); a malformed note is bad input, exit 2
        old_note = read_kept(str(file))
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    ledger = _open(data_dir)
    result: dict[str, Any] = {"ok": False}
    try:
        from ..ledger.note import open_checkpoint

        old = open_checkpoint(old_note, vkey)
        new_note = cosigned_checkpoint(ledger)
        new = open_checkpoint(new_note, vkey)
        result.update(old_size=old.tree_size, new_size=new.tree_size, new_checkpoint=new_note)
        if witness_keys or needed:
            policy = verify_cosigned(old_note, vkey, witness_keys, needed)
            latest = verify_cosigned(new_note, vkey, witness_keys, 0)
            result.update(witnesses=[w.to_dict() for w in policy.witnesses],
                          latest_witnesses=[w.to_dict() for w in latest.witnesses])
            if not policy.ok:
                result["witness_policy_failed"] = True
                why = ("no witness cosigned this checkpoint: keep one printed by `glasslog checkpoint` or served by GET"
                       " /checkpoint after the witnesses cosigned it" if not policy.witnesses else policy.summary())
                rest = [p for p in policy.problems if not p.startswith("too few")]
                raise NoteError(f"your checkpoint does not meet the witness policy: {why}" + "".join(f"; {p}" for p in rest))
        if old.tree_size == 0:
            raise merkle.ProofError("your checkpoint is of the empty tree, which every tree extends: it proves nothing "
                                    "about this log; keep a checkpoint of a non-empty tree")
        if old.tree_size > new.tree_size:
            raise merkle.ProofError(f"the kept checkpoint (size {old.tree_size}) is ahead of the log (size {new.tree_size}):"
                                    " the log was truncated or forked")
        proof = ledger.consistency_proof(old.tree_size, new.tree_size)
        merkle.verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
        try:  # it extends your checkpoint; it must also still hold it (a removed checkpoint is a rewritten record)
            ledger.checkpoint(old.tree_size)
        except LookupError:
            raise merkle.ProofError(f"the log extends your checkpoint at tree size {old.tree_size} but no longer holds"
                                    " it: the checkpoint was removed") from None
        result.update(ok=True, proof=[_b64(p) for p in proof])
    except (NoteError, merkle.ProofError) as exc:
        result["problem"] = str(exc)
    if json_out:
        _print_json(result)
    elif result["ok"]:
        for w in result.get("witnesses", []):
            out.print(f"  your checkpoint was cosigned by witness {w['name']} at {w['time']}", highlight=False)
        for w in result.get("latest_witnesses", []):
            out.print(f"  the log's latest checkpoint is cosigned by witness {w['name']} at {w['time']}", highlight=False)
        out.print(f"[bold green]Consistent[/]: the log at tree size {result['new_size']} extends your checkpoint at"
                  f" {result['old_size']} (consistency proof of {len(result['proof'])} hashes verified).")
    elif result.get("witness_policy_failed"):
        out.print(f"[bold red]Witness policy NOT met[/]: {result['problem']}", highlight=False)
    else:
        out.print(f"[bold red]NOT consistent[/]: {result['problem']}", highlight=False)
    raise typer.Exit(EXIT_OK if result["ok"] else EXIT_FAILED)


@verify_app.command("log")
def verify_log_cmd(
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
    key: Annotated[str | None, typer.Option("--key", help="The log's verifier key, from a copy published independently "
                                                          "of the database being checked.")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="File holding that verifier key.")] = None,
    checkpoint: Annotated[list[str] | None, typer.Option(
        "--checkpoint", metavar="FILE|URL", help="A checkpoint kept outside the log: a file holding a (cosigned) checkpoint note saved from "
                             "GET /checkpoint, a receipt file, or an http(s) URL serving one. The log must extend it and "
                             "still hold it, so a rollback, a truncation, a lost write-ahead file or a removed checkpoint "
                             "shows. Repeatable.")] = None,
    witness_dir: Annotated[Path | None, typer.Option(
        "--witness-dir", help="The directory of a glasslog witness running on this machine: the checkpoint it last "
                              "cosigned for this log is used as a kept checkpoint.")] = None,
    witness_key: WitnessKeys = None,
    min_witnesses: MinWitnesses = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Resume from the checkpoint this verifier verified before (kept in --state-file): check the "
                         "consistency proof to the newest checkpoint and re-hash only the entries added since; the "
                         "first run, or one without a state file, audits the whole log and keeps the state. Old entries' "
                         "bodies are NOT re-read: an edit to an entry verified before is found only without --resume.")] = False,
    state_file: Annotated[Path | None, typer.Option(
        "--state-file", help="Where --resume keeps what was verified (tree size, root hash, frontier, checkpoint; mode "
                             "0600). Default: $XDG_STATE_HOME/glasslog/verified/<origin>.json "
                             "(~/.local/state when unset).")] = None,
) -> None:
    """Recompute every hash, check every checkpoint and their consistency.

    The checkpoints are checked with the verifier key given by --key or
    --key-file; without one, with the key stored in the database being
    checked, which whoever rewrote the database could have replaced (a
    warning says so).

    With --resume, only what the log added since the last verification is
    checked: the log must still hold the verified checkpoint with the same
    root, every new entry is re-hashed into the verified tree's frontier and
    must give each newer checkpoint's root, and the log's consistency proof
    to its newest checkpoint must verify. The bodies of entries verified
    before are not re-read (the trade-off every witness and monitor makes:
    the kept root commits to them); run without --resume now and then to
    re-read everything.
    """
    from ..ledger.cosignature import verify_cosigned
    from ..ledger.note import Verifier, open_checkpoint
    from ..verify import audit_log
    from ..verify.kept import read_kept, witness_state_note
    from ..verify.resume import VerifierState, default_state_path, resume_audit, state_after_audit

    verifier = None
    if key or key_file:
        verifier = Verifier.parse(_verifier_key(key, key_file, data_dir))
    if state_file is not None:
        resume = True
    witness_keys, needed = _witness_policy(witness_key, min_witnesses, str(verifier) if verifier else None)
    kept = []
    if (checkpoint or witness_dir is not None) and verifier is None:
        _fail("--checkpoint and --witness-dir need --key or --key-file: a kept checkpoint must be checked with a key from"
              " outside the log")
    for source in checkpoint or []:
        try:
            note = read_kept(source)
            cp = open_checkpoint(note, verifier)
        except (*_INPUT_ERRORS, NoteError) as exc:
            _fail(f"cannot use the kept checkpoint {source}: {exc}")
        if witness_keys or needed:
            policy = verify_cosigned(note, verifier, witness_keys, needed)
            if not policy.ok:
                _fail(f"the kept checkpoint {source} does not meet the witness policy: {policy.summary()}", EXIT_FAILED)
            err.print(f"kept checkpoint at tree size {cp.tree_size}: {policy.summary()}", highlight=False)
        kept.append(cp)
    if not checkpoint and (witness_keys or needed):
        _fail("--witness-key / --min-witnesses apply to a --checkpoint you kept")
    ledger = _open(data_dir)
    if witness_dir is not None:
        try:
            note = witness_state_note(witness_dir, ledger.origin)
            if note is None:
                err.print(f"[yellow]warning:[/] the witness in {witness_dir} has cosigned nothing for {ledger.origin}",
                          highlight=False)
            else:
                cp = open_checkpoint(note, verifier)
                err.print(f"the witness in {witness_dir} last cosigned tree size {cp.tree_size}", highlight=False)
                kept.append(cp)
        except (*_INPUT_ERRORS, NoteError) as exc:
            _fail(f"cannot use the witness state in {witness_dir}: {exc}")
    state = None
    path = None
    if resume:
        path = state_file if state_file is not None else default_state_path(ledger.origin)
        try:
            state = VerifierState.load(path)
        except _INPUT_ERRORS as exc:
            _fail(str(exc))
    if verifier is None and (state is None or state.key_source != "given"):
        err.print("[yellow]warning:[/] no --key or --key-file: checking the checkpoints with the verifier key stored in "
                  "the database being checked, so a database rewritten and re-signed with another key would pass. Pass the "
                  "log's key from a copy published independently (e.g. log.vkey as the operator published it).",
                  highlight=False)
    with _progress() as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        if state is not None:
            try:
                report, new_state = resume_audit(ledger, state, verifier=verifier, progress=progress, kept=kept)
            except _INPUT_ERRORS as exc:
                _fail(str(exc))
        else:
            report = audit_log(ledger, progress=progress, verifier=verifier, kept=kept)
            new_state = state_after_audit(ledger, report, verifier) if resume else None
    if new_state is not None and path is not None:
        try:
            new_state.save(path)
        except OSError as exc:
            _fail(f"the log verified, but the state could not be kept in {path}: {exc}")
    if json_out:
        _print_json({**report.to_dict(), **({"state_file": str(path)} if path is not None else {})})
    elif report.ok:
        trust = ("with the verifier key given" if report.key_source == "given"
                 else "with the verifier key stored in the database itself (not checked independently)")
        if report.resumed_from is not None:
            what = (f"resumed from the checkpoint verified before at tree size {report.resumed_from}:"
                    f" {report.tree_size - report.resumed_from} new entries rehashed, {report.checkpoints} signed checkpoints"
                    f" from it on checked {trust} and consistent (entries before {report.resumed_from} not re-read)")
        else:
            what = (f"{report.tree_size} entries rehashed, {report.checkpoints} signed checkpoints checked {trust} and"
                    " consistent")
        sizes = ", ".join(str(k.tree_size) for k in kept)
        out.print(f"[bold green]Log verified[/]: {what}" + (f"; it extends and holds the kept checkpoint at tree size"
                                                            f" {sizes}" if kept else "") + ".", highlight=False)
        if new_state is not None:
            out.print(f"  verified tree size {new_state.tree_size} kept in {path} for --resume", highlight=False)
    else:
        out.print(f"[bold red]Log verification FAILED[/]: {report.where()}", highlight=False)
        for p in report.problems:
            out.print(f"  - {p}", highlight=False)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


@verify_app.command("replay")
def verify_replay_cmd(
    data_dir: DataDir = DEFAULT_DIR,
    model: Annotated[str | None, typer.Option(help="Only this model fingerprint.")] = None,
    deployment: Annotated[str | None, typer.Option(help="Only this deployment.")] = None,
    tolerance: Annotated[float, typer.Option(help="Absolute tolerance for probabilities.")] = 1e-9,
    encoder_tolerance: Annotated[float | None, typer.Option(
        "--encoder-tolerance", help="Absolute tolerance for decisions of a head on a foundation encoder (default"
                                    " glasslog.capture.encoder.ENCODER_TOLERANCE, 2e-6: transformer inference moves low bits"
                                    " with batch shape).")] = None,
    model_dir: Annotated[Path | None, typer.Option("--model-dir", help="Model directory for replaying generations"
                                                   " (default: the registry's stored copy).")] = None,
    trust: Trust = None,
    trust_recorded: TrustRecorded = False,
    json_out: JsonOut = False,
    key: Annotated[str | None, typer.Option("--key", help="The log's verifier key, from a copy published independently "
                                                          "of the database being checked.")] = None,
    key_file: Annotated[Path | None, typer.Option("--key-file", help="File holding that verifier key.")] = None,
) -> None:
    """Recompute logged decisions from stored inputs with the registered weights; replay logged generations
    (activation commitments within the model's calibrated tolerances, token checks).

    First, every decision and generation is checked to be in the tree the log's newest checkpoint signs, with the
    verifier key given by --key or --key-file (without one, the key stored in the database being checked, which
    whoever rewrote the database could have replaced: a warning says so).

    Exit 0 all checked decisions reproduced, 1 some were not (or a value is missing or fails its commitment, or an
    entry is not the one the log signed), 2 some models could not be loaded without skops types you did not trust
    (--trust / --trust-recorded): not checked. Self-reported entries (OTLP or gateway generations, OTLP embeddings
    decisions) carry nothing the weights produced to recompute: they are counted as not checked, which is not a
    failure."""
    from ..ledger.note import Verifier
    from ..verify import replay
    from ..verify.anchor import signed_entries

    verifier = Verifier.parse(_verifier_key(key, key_file, data_dir)) if key or key_file else None
    if verifier is None:
        err.print("[yellow]warning:[/] no --key or --key-file: checking that the replayed decisions are the ones the log"
                  " signed with the verifier key stored in the database being checked, so a database rewritten and"
                  " re-signed with another key would pass. Pass the log's key from a copy published independently.",
                  highlight=False)
    ledger = _open(data_dir)
    gen_report = None
    with _progress() as bar:
        task = bar.add_task("checking entries against the signed checkpoint", total=None)
        anchor = signed_entries(ledger, ("decision", "generation"), verifier,
                                progress=lambda d, t: bar.update(task, completed=d, total=t))
    try:
        if model:
            model = Registry(ledger).get(model).fingerprint
        with _progress() as bar:
            task = bar.add_task("replaying decisions", total=None)
            report = replay(ledger, model=model, deployment=deployment, tolerance=tolerance,
                            encoder_tolerance=encoder_tolerance, trusted=tuple(trust or ()), trust_recorded=trust_recorded,
                            progress=lambda d, t: bar.update(task, completed=d, total=t))
            if next(iter(ledger.entries_of_type("generation")), None) is not None:
                from ..verify.generation_replay import replay_generations

                gtask = bar.add_task("replaying generations", total=None)
                gen_report = replay_generations(ledger, model=model, deployment=deployment, model_dir=model_dir,
                                                progress=lambda d, t: bar.update(gtask, completed=d, total=t))
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    ok = report.ok and (gen_report is None or gen_report.ok) and anchor.ok
    not_checked = ok and bool(report.not_checked)  # nothing failed, but some models could not be loaded: no verdict
    if json_out:
        _print_json({**report.to_dict(), **({"generations": gen_report.to_dict()} if gen_report is not None else {}),
                     "signed": anchor.to_dict()})
        raise typer.Exit(EXIT_USAGE if not_checked else EXIT_OK if ok else EXIT_FAILED)
    trust = ("with the verifier key given" if anchor.key_source == "given"
             else "with the verifier key stored in the database itself (not checked independently)")
    if anchor.ok:
        out.print(f"{anchor.checked} decisions and generations are in the tree the checkpoint at tree size"
                  f" {anchor.tree_size} signs (checked {trust})"
                  + (f"; {anchor.uncovered} appended since are not signed yet and were replayed unanchored"
                     if anchor.uncovered else "") + ".", highlight=False)
    else:
        where = f" (first bad index {anchor.first_bad_index})" if anchor.first_bad_index is not None else ""
        out.print(f"[bold red]Not the log's signed entries[/]{where}, checked {trust}:", highlight=False)
        for p in anchor.problems:
            out.print(f"  - {p}", highlight=False)
    if gen_report is not None and report.total == 0:
        _print_generations(gen_report)
    else:
        colour = "[bold green]Replay verified[/]" if report.ok else "[bold red]Replay FAILED[/]"
        if not_checked or (report.ok and not report.checked and report.self_reported):
            colour = "[bold yellow]Replay incomplete[/]" if report.checked else "[bold yellow]Replay checked nothing[/]"
        unchecked = report.total - report.checked - report.erased - report.self_reported
        out.print(f"{colour}: of {report.total} decisions, {report.matched} reproduced by the registered weights"
                  f" (labels exact, probabilities within {report.tolerance:g}"
                  + (f", {report.encoder_checked} on a foundation encoder within {report.encoder_tolerance:g}"
                     if report.encoder_checked else "")
                  + f"; max |diff| {report.max_abs_diff:.1e}),"
                  f" {report.mismatch_count} not reproduced, {unchecked} could not be checked,"
                  f" {report.erased} skipped because their private values were lawfully erased"
                  + (f", {report.self_reported} self-reported (OTLP embeddings: nothing the weights produced to"
                     " recompute, not checked)" if report.self_reported else "") + ".")
        for m in report.mismatches[:10]:
            out.print(f"  - entry {m['index']}: logged {json.dumps(m['logged'])}, recomputed {json.dumps(m['recomputed'])}", highlight=False)
        for f in report.commitment_failures[:10]:
            out.print(f"  - entry {f['index']}: the stored value of '{f['field']}' does not open the logged commitment")
        for f in report.missing[:10]:
            out.print(f"  - entry {f['index']}: the private value of '{f['field']}' is missing and no erasure was recorded")
        for f in report.unlogged_erasures[:10]:
            out.print(f"  - entry {f['index']}: the private value of '{f['field']}' is marked erased beside the log, but no"
                      " erasure entry on the log records it")
        for e in report.errors:
            out.print(f"  - {e}", highlight=False)
        for m in report.not_checked:
            rec = (f"; the registration records {m['recorded']} (pass --trust-recorded to accept them)"
                   if m["recorded"] else "")
            out.print(f"  - model {m['model'][:19]}... not checked: it needs skops types {m['types']} you did not trust"
                      f" (review them, then pass --trust TYPE){rec}", highlight=False)
        if report.batch_dependent:
            out.print(f"  [bold yellow]leakage signal:[/] {report.batch_dependent} decisions get another output when "
                      "recomputed alone than in the batch they were logged in: the model's output for one row depends "
                      "on the other rows of its batch")
            for m in report.batch_dependent_examples[:5]:
                out.print(f"  - entry {m['index']} (batch of {m['batch_size']}): in its batch {json.dumps(m['in_batch'])},"
                          f" alone {json.dumps(m['alone'])}", highlight=False)
        if gen_report is not None:
            _print_generations(gen_report)
    raise typer.Exit(EXIT_USAGE if not_checked else EXIT_OK if ok else EXIT_FAILED)


def _print_generations(r) -> None:
    colour = "[bold green]Generation replay verified[/]" if r.ok else "[bold red]Generation replay FAILED[/]"
    if r.ok and r.exact + r.within_tolerance == 0:  # only self-reported ones: nothing failed, nothing was replayed
        colour = "[bold yellow]Generation replay checked nothing[/]"
    uncalibrated = [fp for fp, c in r.calibrated.items() if not c]
    out.print(f"{colour}: of {r.total} generations, {r.exact} reproduced exactly, {r.within_tolerance} within the model's"
              f" calibrated tolerance, {r.failed} failed, {r.unchecked} could not be checked"
              + (f", {r.self_reported} self-reported (OTLP or gateway: no activations or token ids to replay, not"
                 " checked)" if r.self_reported else "") + ".", highlight=False)
    if uncalibrated:
        out.print("  [yellow]warning:[/] no replay calibration on the record for " + ", ".join(fp[:19] + "..." for fp in
                  uncalibrated) + ": the published Llama-3.1-8B thresholds were used, which let small perturbations pass",
                  highlight=False)
    for g in [g for g in r.results if g.status in ("failed", "unchecked")][:10]:
        where = (f" (first failing token {g.first_failing_token})" if g.first_failing_token is not None else
                 f" (first failing chunk {g.first_failing_chunk})" if g.first_failing_chunk is not None else "")
        out.print(f"  - entry {g.index}: {g.status}{where}: {g.reason}", highlight=False)
    for e in r.errors:
        out.print(f"  - {e}", highlight=False)




@verify_app.command("calibrate")
def verify_calibrate_cmd(
    model: Annotated[str, typer.Argument(help="The registered causal LM's fingerprint (or a unique prefix).")],
    data_dir: DataDir = DEFAULT_DIR,
    model_dir: Annotated[Path | None, typer.Option("--model-dir", help="The model directory (default: the registry's"
                                                   " stored copy).")] = None,
    prompts: Annotated[int, typer.Option(help="Calibration prompts (half set the thresholds, half measure false alarms).")] = 24,
    tokens: Annotated[int, typer.Option(help="New tokens per calibration generation.")] = 64,
    json_out: JsonOut = False,
) -> None:
    """Calibrate generation-replay thresholds for a model and put them on its record (a finding entry).

    Honest reruns under several batch shapes set the tolerated deviation; perturbed copies (noise on one layer,
    another seed for test models) show what must fail; the false-alarm rate is measured on held-out reruns.
    """
    from ..verify.generation_replay import calibrate

    ledger = _open(data_dir)
    try:
        registry = Registry(ledger)
        fp = registry.get(model).fingerprint
        path = model_dir if model_dir is not None else registry.model_dir(fp)
        with _progress() as bar:
            bar.add_task("calibrating (honest reruns, perturbed copies)", total=None)
            import tempfile

            with tempfile.TemporaryDirectory(prefix="glasslog-calibration-") as work:
                ev = calibrate(ledger, fp, path, work_dir=work, prompts=prompts, max_new_tokens=tokens)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json(ev)
    else:
        t = ev["thresholds"]
        out.print(f"Replay calibrated for {fp[:19]}...: at most {t['exp_mismatches']} exponent mismatches, mantissa error"
                  f" mean <= {t['mant_err_mean']:g} and median <= {t['mant_err_median']:g} per chunk; greedy logit gap <="
                  f" {t['logit_gap']:g}; sampled log-probability z >= {t['logprob_z']:g}. False alarms on held-out honest"
                  f" reruns: {ev['false_alarms']}/{ev['held_out_trials']}; perturbed copies detected:"
                  f" {ev['detection_rate']:.0%}. On the record as a finding.", highlight=False)
    raise typer.Exit(EXIT_OK if ev["false_alarms"] == 0 else EXIT_FAILED)

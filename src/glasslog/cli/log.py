"""Commands on the log itself: ``init``, ``checkpoint``, ``entry``, ``receipt``, and ``prove inclusion|consistency``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..ledger import Ledger, LedgerError
from .common import DEFAULT_DIR, DataDir, JsonOut, check_out, err, out
from .common import USER_ERRORS as _INPUT_ERRORS
from .common import b64 as _b64
from .common import fail as _fail
from .common import open_ledger as _open
from .common import print_json as _print_json

prove_app = typer.Typer(help="Produce inclusion and consistency proofs.", no_args_is_help=True)


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



def checkpoint(
    data_dir: DataDir = DEFAULT_DIR,
    tree_size: Annotated[int | None, typer.Option("--tree-size", help="A kept checkpoint at this size.")] = None,
    json_out: JsonOut = False,
) -> None:
    """Print the newest cosigned checkpoint with every signature line (the log's and its witnesses'), as GET
    /checkpoint and receipts carry them, so a kept copy can be checked later with a witness policy (verify checkpoint
    --witness-key); the newest checkpoint when none is cosigned yet. With --tree-size, the one at that size."""
    from ..ledger.witnesses import active_witnesses, cosigned_checkpoint

    ledger = _open(data_dir)
    try:
        latest = ledger.open_checkpoint(ledger.checkpoint(tree_size)).tree_size
        size = tree_size
        find = getattr(ledger.store, "latest_cosigned_size", None)
        if size is None and find is not None:
            size = find(1)
        note = cosigned_checkpoint(ledger, size if size is not None else latest)
        cp = ledger.open_checkpoint(note)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if cp.tree_size != latest:
        err.print(f"the newest checkpoint (tree size {latest}) is not cosigned yet: this is the newest cosigned one, at"
                  f" tree size {cp.tree_size}", highlight=False)
    elif note.count("\n\u2014 ") <= 1 and tree_size is None and active_witnesses(ledger):
        err.print("no witness cosigned this checkpoint (yet): it is signed by the log alone", highlight=False)
    if json_out:
        _print_json({"origin": cp.origin, "tree_size": cp.tree_size, "root_hash": _b64(cp.root_hash), "note": note,
                     "verifier_key": ledger.verifier_key})
    else:
        sys.stdout.write(note)


def entry(
    index: Annotated[int, typer.Argument(help="Entry index, from 0.")],
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Print one entry (its canonical JSON) and its leaf hash."""
    from ..ledger import merkle

    ledger = _open(data_dir)
    try:
        data = ledger.entry(index)
    except _INPUT_ERRORS as exc:
        _fail(str(exc))
    if json_out:
        _print_json({"index": index, "leaf_hash": _b64(merkle.leaf_hash(data)), "entry": json.loads(data)})
    else:
        sys.stdout.write(data.decode("utf-8") + "\n")
        sys.stdout.write(f"leaf hash: {_b64(merkle.leaf_hash(data))}\n")


def receipt(
    index: Annotated[int | None, typer.Argument(help="Entry index.")] = None,
    subject: Annotated[str | None, typer.Option(help="Every receipt for this subject id instead.")] = None,
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (or directory for --subject).")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    refresh: Annotated[Path | None, typer.Option(
        "--refresh", help="A receipt you hold: the same receipt against the newest cosigned checkpoint, with the consistency "
                          "proof from its old checkpoint.")] = None,
) -> None:
    """Export a receipt: entry, index, signed checkpoint (with the witnesses' cosignatures), inclusion proof."""
    from .. import capture

    if refresh is not None:
        if index is not None or subject is not None:
            _fail("--refresh takes a receipt file instead of an INDEX or --subject")
        from ..ledger.receipt import Receipt, ReceiptFormatError
        from ..ledger.witnesses import refresh_receipt

        try:
            old = Receipt.load(refresh)
        except ReceiptFormatError as exc:
            _fail(str(exc))
        ledger = _open(data_dir)
        try:
            new = refresh_receipt(ledger, old)
        except _INPUT_ERRORS as exc:
            _fail(str(exc))
        if output is None:
            _print_json(new.to_dict())
            return
        try:
            new.save(output)
        except OSError as exc:
            _fail(f"cannot write the receipt to {output}: {exc.strerror or exc}")
        out.print(f"wrote the receipt for entry {new.index} at tree size {new.tree_size} (was {old.tree_size}) to {output}")
        return
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
    check_out(output)
    try:
        if subject:
            if output.exists() and not output.is_dir():
                _fail(f"--out {output} is a file; with --subject give a directory for the receipts")
            output.mkdir(exist_ok=True)
            for r in receipts:
                r.save(output / f"receipt-{r.index}.json")
            out.print(f"wrote {len(receipts)} receipts to {output}")
        else:
            target = output / f"receipt-{index}.json" if output.is_dir() else output
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



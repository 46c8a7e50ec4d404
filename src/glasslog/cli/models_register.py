"""``glasslog models register PATH --card card.json``: register a skops file or a model directory from the command line.

Exit codes: 0 registered, 2 bad input (the message names the problem and,
for model directories, the file); nothing is written to the log then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import GlasslogError
from .common import DEFAULT_DIR, DataDir, JsonOut, open_ledger, out, print_json
from .common import fail as _fail

__all__ = ["register_command"]


def register_command(
    path: Annotated[Path, typer.Argument(help="A skops file, or a Hugging Face model directory (safetensors, config,"
                                              " tokenizer; fingerprinted with OpenSSF model signing).")],
    card: Annotated[Path, typer.Option("--card", help="The model card, JSON (ModelCard.to_dict form).")],
    signature: Annotated[Path | None, typer.Option("--signature", help="The publisher's OMS signature (default:"
                                                   " PATH/model.sig when present).")] = None,
    signer_key: Annotated[Path | None, typer.Option("--signer-key", help="Publisher's EC public key (PEM) to verify"
                                                    " model.sig offline.")] = None,
    signer_cert: Annotated[list[Path] | None, typer.Option("--signer-cert", help="Certificate chain (PEM) to verify a"
                                                           " certificate-signed model.sig offline (repeatable).")] = None,
    trust: Annotated[list[str] | None, typer.Option("--trust", help="skops files: an extra type you reviewed and trust"
                                                    " (repeatable).")] = None,
    data_dir: DataDir = DEFAULT_DIR,
    json_out: JsonOut = False,
) -> None:
    """Register a model: a skops file (SHA-256 fingerprint) or a model directory (OMS root digest), with its card."""
    from ..registry import ModelCard, Registry

    try:
        card_obj = ModelCard.from_dict(json.loads(card.read_text(encoding="utf-8")))
    except OSError as exc:
        _fail(f"cannot read the card {card}: {exc.strerror or exc}")
    except json.JSONDecodeError as exc:
        _fail(f"the card {card} is not JSON: {exc}")
    except (GlasslogError, ValueError, TypeError, AttributeError) as exc:
        _fail(f"the card {card} is not a valid model card: {exc}")
    if not path.exists():
        _fail(f"{path} does not exist")
    if not path.is_dir() and (signature or signer_key or signer_cert):
        _fail("--signature, --signer-key and --signer-cert apply to model directories only")
    from ..registry import oms

    for option, kind, files in (("--signer-key", "public key", [signer_key] if signer_key else []),
                                ("--signer-cert", "certificate", signer_cert or [])):
        for f in files:
            try:
                oms.check_pem(f.read_bytes(), kind, f"{option} {f}")
            except OSError as exc:
                _fail(f"{option} {f}: {exc.strerror or exc}")
            except GlasslogError as exc:
                _fail(str(exc))
    ledger = open_ledger(data_dir)
    try:
        registry = Registry(ledger)
        if path.is_dir():
            record = registry.register(path, card_obj, signature=signature, public_key=signer_key,
                                       certificate_chain=signer_cert if signer_cert else None)
        else:
            record = registry.register(path, card_obj, tuple(trust or ()))
    except (GlasslogError, ValueError, OSError, RuntimeError) as exc:
        _fail(str(exc))
    finally:
        ledger.close()
    if json_out:
        print_json(record.to_dict())
        return
    t = Table(show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    t.add_row("registered", f"{record.card.name} {record.card.version} at entry {record.registered_index}")
    t.add_row("fingerprint", record.fingerprint)
    if record.is_directory:
        a = record.artifact
        t.add_row("kind", f"model directory: OMS root digest over {len(a['files'])} files ({a['bytes']:,} bytes),"
                          f" computed with model_signing ({a['oms']['method']}, {a['oms']['hash_type']})")
        t.add_row("tokenizer", str(a["tokenizer"]))
        t.add_row("chat template", str(a["chat_template"]))
        t.add_row("context length", str(a["context_length"]))
        sig = a.get("signature")
        t.add_row("publisher signature", f"verified offline: {sig['signer']} ({sig['method']})" if sig else "none")
    else:
        t.add_row("kind", "skops artifact: SHA-256 of its bytes")
    t.add_row("disclosure", record.card.disclosure_policy)
    out.print(t)

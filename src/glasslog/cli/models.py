"""``glasslog models list|show|set-status|register``: the model registry."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ..registry import Registry, RegistryError
from .common import DEFAULT_DIR, DataDir, JsonOut, out
from .common import USER_ERRORS as _INPUT_ERRORS
from .common import fail as _fail
from .common import open_ledger as _open
from .common import print_json as _print_json

models_app = typer.Typer(help="The model registry.", no_args_is_help=True)


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
    if m.is_directory:  # a model directory: what its OMS fingerprint covers, and who signed it
        a = m.artifact
        sig = a.get("signature")
        for k, v in [("weights", f"model directory, OMS root digest (model_signing, {a['oms']['method']}, {a['oms']['hash_type']})"
                                 f" over {len(a['files'])} files, {a['bytes']:,} bytes"),
                     ("tokenizer", f"{a['tokenizer']} ({', '.join(a['tokenizer_files'])})"),
                     ("chat template", str(a["chat_template"])), ("context length", str(a["context_length"])),
                     ("publisher signature", f"{sig['signer']} ({sig['method']}, verified offline)" if sig else "none")]:
            t.add_row(f"[bold]{k}[/]", v)
    if m.trusted:  # the registrant trusted these; a verifier decides whether to (--trust-recorded)
        t.add_row("[bold]trusted skops types[/]", ", ".join(m.trusted))
    if c.has_domains():
        t.add_row("[bold]input policy[/]", f"{c.input_policy or 'refuse'} values outside the features' stated domains")
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


from .models_register import register_command  # noqa: E402  (skops files and model directories)

models_app.command("register")(register_command)

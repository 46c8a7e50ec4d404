"""``glasslog watermark declare|detect|reveal``: deployments' watermarks on the record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli.common import DEFAULT_DIR, USER_ERRORS, DataDir, JsonOut, fail, fail_with, open_ledger, out, print_json
from ..errors import EXIT_FAILED, EXIT_OK

app = typer.Typer(help="Watermarks: declare one for a deployment (key committed on the log), detect it in a text, reveal"
                       " the key. It marks only text the deployment decoded with its key: it does not track outputs of"
                       " open weights that someone runs with their own decoding.", no_args_is_help=True)

Deployment = Annotated[str, typer.Option("--deployment", help="The deployment, e.g. agency.example/letters/2026-11.")]


@app.command("declare")
def declare_cmd(deployment: Deployment, data_dir: DataDir = DEFAULT_DIR,
                gamma: Annotated[float, typer.Option(help="Green-list fraction.")] = 0.25,
                delta: Annotated[float, typer.Option(help="Logit bias added to green tokens.")] = 2.0,
                json_out: JsonOut = False) -> None:
    """Declare a Kirchenbauer green-list watermark: a fresh secret key beside the log, its commitment on the log."""
    from . import declare

    ledger = open_ledger(data_dir)
    try:
        wm = declare(ledger, deployment, gamma=gamma, delta=delta)
    except USER_ERRORS as exc:
        fail_with(exc)
    if json_out:
        print_json({"deployment": deployment, "entry": wm.declared_index, "key_commitment": wm.key_commitment,
                    "gamma": wm.gamma, "delta": wm.delta})
    else:
        out.print(f"Watermark declared for {deployment} (entry {wm.declared_index}); key commitment {wm.key_commitment}."
                  " The key stays beside the log until revealed.", highlight=False)


@app.command("detect")
def detect_cmd(deployment: Deployment, data_dir: DataDir = DEFAULT_DIR,
               text: Annotated[str | None, typer.Option(help="The text to test.")] = None,
               text_file: Annotated[Path | None, typer.Option("--text-file", help="Read the text from this file.")] = None,
               model_dir: Annotated[Path | None, typer.Option("--model-dir", help="Tokenizer source: the deployed model's"
                                                              " directory (default: the registry's stored copy).")] = None,
               alpha: Annotated[float, typer.Option(help="Significance level for 'detected'.")] = 1e-3,
               json_out: JsonOut = False) -> None:
    """Test a text for a deployment's watermark: exact binomial p-value, tokens scored, the key commitment.

    Exit 0 when the watermark is detected (p < alpha), 1 when not, 2 on bad input (e.g. a deployment without a
    watermark).
    """
    from ..demo.testmodels import load_tokenizer
    from . import detect, require

    if (text is None) == (text_file is None):
        fail("give exactly one of --text and --text-file")
    ledger = open_ledger(data_dir)
    try:
        body = text if text is not None else text_file.read_text(encoding="utf-8")
        require(ledger, deployment)  # a deployment without a watermark is refused before anything is loaded
        tok = load_tokenizer(_model_dir(ledger, deployment, model_dir))
        d = detect(ledger, deployment, body, tok, alpha)
    except USER_ERRORS as exc:
        fail_with(exc)
    if json_out:
        print_json(d.to_dict())
    else:
        verdict = "[bold green]watermark detected[/]" if d.detected else "[bold]no watermark detected[/]"
        out.print(f"{verdict} for {deployment}: {d.green} of {d.scored} distinct token pairs green (expected"
                  f" {d.gamma:.0%} without the watermark), z = {d.z:.2f}, exact p = {d.p_value:.3g}"
                  f" (log10 p = {d.log10_p:.2f}); {d.tokens} tokens; key commitment {d.key_commitment}.", highlight=False)
    raise typer.Exit(EXIT_OK if d.detected else EXIT_FAILED)


@app.command("reveal")
def reveal_cmd(deployment: Deployment, data_dir: DataDir = DEFAULT_DIR, json_out: JsonOut = False) -> None:
    """Publish the deployment's watermark key, configuration and salt on the log (anyone can then detect and check)."""
    from . import reveal

    ledger = open_ledger(data_dir)
    try:
        index = reveal(ledger, deployment)
    except USER_ERRORS as exc:
        fail_with(exc)
    if json_out:
        print_json({"deployment": deployment, "entry": index})
    else:
        out.print(f"Watermark key of {deployment} revealed in entry {index}.", highlight=False)


def _model_dir(ledger, deployment: str, given: Path | None) -> Path:
    """The tokenizer source: ``given``, else the stored directory of the model the deployment's generations name.

    A given directory must be a model directory (``config.json`` and ``.safetensors`` weights; checked before
    transformers sees it) and match, file by file, the registered model the deployment's captured generations name
    (``oms.check_against_record``): another tokenizer would score other token ids.

    Raises:
        glasslog.registry.oms.ModelDirectoryError: not a model directory, or a file differs from the registration
            (``TokenizerMismatchError``/``TamperedFileError`` naming the file).
    """
    from ..registry import Registry, oms

    models = list(dict.fromkeys(e["model"] for _, e in ledger.entries_of_type("generation")
                                if e["deployment"] == deployment and e.get("model") and e.get("source") is None))
    if given is not None:
        _require_model_dir(given)
        reg = Registry(ledger)
        for fp in models:  # captured generations: the deployment ran these registered model directories
            m = reg.get(fp)
            if m.is_directory:
                oms.check_against_record(given, m.artifact, what=f"model directory {m.fingerprint[:19]}")
        return given
    if models:
        return Registry(ledger).model_dir(models[0])
    fail(f"no --model-dir given and no stored model directory for deployment {deployment!r}")


def _require_model_dir(path: Path) -> None:
    """Refuse ``--model-dir`` that is not a model directory (no ``config.json`` or no ``.safetensors`` weights).

    Raises:
        glasslog.registry.oms.ModelDirectoryError: naming the option, the path and what is missing.
    """
    from ..registry.oms import ModelDirectoryError

    if not path.is_dir():
        raise ModelDirectoryError(f"--model-dir {path} is not a directory")
    if not (path / "config.json").is_file():
        raise ModelDirectoryError(f"--model-dir {path} is not a model directory: it has no config.json (the model's"
                                  " configuration)", file="config.json")
    if not any(path.rglob("*.safetensors")):
        raise ModelDirectoryError(f"--model-dir {path} is not a model directory: it has no .safetensors weights")

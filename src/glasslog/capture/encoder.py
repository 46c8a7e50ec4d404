"""Capture for a downstream developer's model built on a foundation encoder.

A developer adapts a dual-use foundation model to its product: a sentence
encoder (a registered model directory, fingerprinted with its OMS root
digest) turns text into embeddings, and the developer's own head (a
scikit-learn classifier on the embeddings and any tabular features,
registered as a skops artifact) decides. Every decision is logged naming
**both** fingerprints: ``model`` is the head (the adaptation, whose card
states the claims and features) and ``foundation`` the encoder's weights::

    enc = glasslog.capture.wrap_encoder_classifier(log, foundation_fp, head_fp, "agency.example/pretrial/2026-11")
    proba = enc.predict_proba(texts, features=tabular_frame, subject_ids=ids)

Embeddings are computed as sentence-transformers does for the directory:
the transformer's last hidden state, mean-pooled over the attention mask
(the directory's ``1_Pooling/config.json``), L2-normalised when its
``modules.json`` lists a ``Normalize`` module. Texts longer than the model's
context length are refused (never silently truncated): the logged input is
what the model saw. The head receives a frame of the embedding columns
(``emb_000`` ...) followed by the tabular features (``head_frame``); train
it on exactly that (``SentenceEncoder.embed`` + ``head_frame``).

Before anything loads, the encoder's directory (the registry's stored copy,
or the developer's ``model_dir``) is checked against its registration:
pickle checkpoints, a tokenizer that differs from the registered one, any
other missing, extra or altered file are refused, each named. A suspended or
withdrawn foundation or head refuses every decision (the kill switch works
on the foundation model too).

Needs the optional extra: ``pip install torch==2.13.0 && pip install 'glasslog[llm]'``.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..ledger import Entry, EntryError, Ledger, PrivateValue, commit, utc_now
from ..ledger.commitments import fresh_salts
from ..ledger.log import AppendResult
from ..records import ABSENT, decision_entry
from ..registry import ArtifactError, Deployment, DeploymentError, Deployments, RegisteredModel, Registry
from .sdk import InputError, ModelNotActiveError, _native, _output_value, _records

__all__ = ["EMBEDDING_PREFIX", "ENCODER_TOLERANCE", "SentenceEncoder", "CapturedEncoderClassifier", "wrap_encoder_classifier",
           "load_encoder", "head_frame", "embedding_columns", "EncoderHeadReplayer"]

EMBEDDING_PREFIX = "emb_"
"""Column names of the embedding in the head's input frame: ``emb_000``, ``emb_001``, ..."""

ENCODER_TOLERANCE = 2e-6
"""Largest absolute probability difference replay accepts for encoder decisions.

Transformer inference is not bit-reproducible across batch shapes: padding a
text with others changes the low bits of its embedding. Calibrated on the
``glasslog demo llm`` head (all-MiniLM-L6-v2 + logistic regression, torch
2.13 CPU, float32, 300 deployment rows): honest reruns move probabilities by
at most 2.8e-7 (texts embedded one at a time vs in padded batches; 1 vs 2
threads: 0); Gaussian noise of 1e-4 x the weights' standard deviation on one
layer's output projection moves the median decision by 1.5e-6 to 3.1e-6, and
1e-3 x by 1.5e-5 to 3.2e-5 (58 % to 76 % of decisions beyond 1e-5). 2e-6 is
seven times the largest honest difference seen. tests/test_llm_encoder.py
measures both sides again."""


def _torch():
    from ..registry.oms import require_llm_extra

    torch = require_llm_extra("torch")
    transformers = require_llm_extra("transformers")
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return torch, transformers


def embedding_columns(dim: int) -> list[str]:
    """``["emb_000", ..., "emb_<dim-1>"]``: the embedding's columns in the head's input frame."""
    width = max(3, len(str(dim - 1)))
    return [f"{EMBEDDING_PREFIX}{i:0{width}d}" for i in range(dim)]


def head_frame(embeddings: np.ndarray, features: pd.DataFrame | None = None) -> pd.DataFrame:
    """The head's input: embedding columns, then the tabular features (same rows, index reset).

    Args:
        embeddings: float array (rows, dim) from ``SentenceEncoder.embed``.
        features: tabular features, one row per text, or None.
    """
    emb = pd.DataFrame(np.asarray(embeddings, dtype=np.float64), columns=embedding_columns(embeddings.shape[1]))
    if features is None or features.shape[1] == 0:
        return emb
    if len(features) != len(emb):
        raise InputError(f"got {len(features)} feature rows for {len(emb)} texts")
    return pd.concat([emb, features.reset_index(drop=True)], axis=1)


class SentenceEncoder:
    """A foundation encoder loaded from a checked model directory (see module docstring).

    Attributes:
        path: the directory it was loaded from.
        max_length: the longest text accepted, in tokens (special tokens included).
        pooling: ``mean`` or ``cls``; normalize: L2-normalised embeddings.
        dim: embedding width.
        cache_size: distinct texts whose embeddings are kept in memory (0: none).
            Repeated texts (charge descriptions, product names ...) are then
            embedded once per process; nothing is kept on disk.
    """

    def __init__(self, path: str | os.PathLike, context_length: int | None = None, cache_size: int = 20_000):
        torch, transformers = _torch()
        self.path = Path(path)
        self._torch = torch
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.model = transformers.AutoModel.from_pretrained(str(self.path), local_files_only=True, use_safetensors=True,
                                                            dtype=torch.float32)
        self.model.eval()
        pooling = _read_json(self.path / "1_Pooling" / "config.json")
        if pooling.get("pooling_mode_cls_token"):
            self.pooling = "cls"
        elif pooling.get("pooling_mode_mean_tokens", True):
            self.pooling = "mean"
        else:
            raise ArtifactError(f"{self.path}: only mean and CLS pooling are supported, 1_Pooling/config.json says {pooling}")
        modules = _read_json(self.path / "modules.json", default=[])
        self.normalize = any(str(m.get("type", "")).endswith("Normalize") for m in modules if isinstance(m, dict))
        limits = [n for n in (context_length, getattr(self.model.config, "max_position_embeddings", None)) if n]
        self.max_length = int(min(limits)) if limits else int(self.tokenizer.model_max_length)
        self.dim = int(self.model.config.hidden_size)

    def runtime(self) -> dict[str, str]:
        """Library versions and dtype, as logged with each decision (``runtime``)."""
        import transformers

        return {"torch": self._torch.__version__, "transformers": transformers.__version__, "dtype": "float32",
                "pooling": self.pooling + ("+normalize" if self.normalize else "")}

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (special tokens included, no truncation).

        Raises:
            InputError: a text that is not a string, or longer than ``max_length`` tokens.
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise InputError(f"text for row {i} must be a string, got {type(t).__name__}")
        ids = self.tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
        for i, row in enumerate(ids):
            if len(row) > self.max_length:
                raise InputError(f"text for row {i} is {len(row)} tokens; the model accepts at most {self.max_length}"
                                 f" (its context length): glasslog refuses it rather than truncating, so that the logged"
                                 " input is what the model saw")
        return ids

    def clear_cache(self) -> None:
        """Forget the embeddings kept in memory."""
        self._cache.clear()

    def embed(self, texts: Sequence[str], batch_size: int = 64, *, use_cache: bool = True) -> np.ndarray:
        """Embeddings of ``texts``, float32 (rows, dim), in the order given.

        Each distinct text is embedded once (and, with ``use_cache``, once
        per process while it stays among the ``cache_size`` most recent);
        texts are batched by length (less padding); see ``ENCODER_TOLERANCE``
        for how much batching moves the result.

        Raises:
            InputError: as ``token_ids``; or no texts.
        """
        if len(texts) == 0:
            raise InputError("no texts given")
        texts = list(texts)
        self.token_ids(texts)  # refuse bad or over-long texts before any work
        unique = list(dict.fromkeys(texts))
        cache = self._cache if use_cache and self.cache_size > 0 else {}
        todo = [t for t in unique if t not in cache]
        fresh = dict(zip(todo, self._embed(todo, batch_size))) if todo else {}
        rows = {t: (fresh[t] if t in fresh else cache[t]) for t in unique}
        if cache is self._cache:
            for t in unique:
                self._cache[t] = rows[t]
                self._cache.move_to_end(t)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return np.stack([rows[t] for t in texts])

    def _embed(self, texts: list[str], batch_size: int) -> np.ndarray:
        torch = self._torch
        ids = self.token_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                width = max(len(ids[i]) for i in rows)
                input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for r, i in enumerate(rows):
                    input_ids[r, : len(ids[i])] = torch.tensor(ids[i])
                    mask[r, : len(ids[i])] = 1
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                if self.pooling == "cls":
                    pooled = hidden[:, 0]
                else:  # sentence-transformers' mean pooling
                    m = mask.unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)
                if self.normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[rows] = pooled.float().numpy()
        return out


def _read_json(path: Path, default: Any = None) -> Any:
    if not path.is_file():
        return {} if default is None else default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise ArtifactError(f"{path} is not valid JSON") from None


def load_encoder(registry: Registry, foundation: RegisteredModel, model_dir: str | os.PathLike | None = None) -> SentenceEncoder:
    """Load a registered foundation encoder after checking its directory against the registration.

    Args:
        model_dir: the developer's copy of the weights; default the registry's stored copy.

    Raises:
        glasslog.registry.RegistryError: not a model directory.
        glasslog.registry.oms.PickleCheckpointError, TokenizerMismatchError,
            TamperedFileError: the directory differs from the registered one (the file is named).
    """
    from ..registry import oms

    if not foundation.is_directory:
        raise ArtifactError(f"model {foundation.fingerprint} ({foundation.card.name}) is not a model directory; the"
                            " foundation must be a registered encoder directory")
    if model_dir is None:
        path = registry.model_dir(foundation.fingerprint)
    else:
        path = Path(model_dir)
        oms.check_against_record(path, foundation.artifact, what=f"model directory of {foundation.card.name}")
    return SentenceEncoder(path, foundation.artifact.get("context_length"))


@dataclass
class CapturedEncoderClassifier:
    """A foundation encoder plus a developer's head, wrapped so that decisions are logged with both fingerprints.

    Attributes:
        foundation: the encoder's registration (model directory).
        head: the head's registration (skops), the ``model`` of each decision.
        text_feature: the head card's ``text`` feature: where the text goes in the logged input.
        tabular: the head card's other features, in card order.
        last_batch: what the last call appended, or None.
    """

    ledger: Ledger
    foundation: RegisteredModel
    head: RegisteredModel
    deployment: str
    encoder: SentenceEncoder
    estimator: Any
    registry: Registry
    visibility: str = "private"
    last_batch: AppendResult | None = None

    @property
    def text_feature(self) -> str:
        return _text_feature(self.head)

    @property
    def tabular(self) -> list[str]:
        return [f.name for f in self.head.card.features if f.name != self.text_feature]

    def _check_active(self) -> None:
        for attr in ("foundation", "head"):
            current = self.registry.get(getattr(self, attr).fingerprint)
            setattr(self, attr, current)
            if current.status != "active":
                last = current.history[-1]
                role = "foundation model" if attr == "foundation" else "model"
                raise ModelNotActiveError(
                    f"{role} {current.card.name} {current.card.version} ({current.fingerprint[:19]}...) is {current.status}"
                    f" since entry {last.index} ({last.reason}); decisions built on it are refused")

    def _inputs(self, texts: Sequence[str], features: Any) -> tuple[list[str], pd.DataFrame, list[dict]]:
        if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence) and not isinstance(texts, (pd.Series, np.ndarray)):
            raise InputError("texts must be a list of strings, one per decision")
        texts = list(texts)
        if not texts:
            raise InputError("no texts given")
        tabular = self.tabular
        if features is None:
            if tabular:
                raise InputError(f"model {self.head.card.name} also needs the features {tabular}")
            frame = pd.DataFrame(index=range(len(texts)))
        else:
            frame = features if isinstance(features, pd.DataFrame) else pd.DataFrame(features)
            cols = [str(c) for c in frame.columns]
            missing = [n for n in tabular if n not in cols]
            extra = [c for c in cols if c not in tabular]
            if missing or extra:
                parts = ([f"missing features {missing}"] if missing else []) + ([f"unexpected columns {extra}"] if extra else [])
                raise InputError(f"features do not match model {self.head.card.name}: {'; '.join(parts)}")
            frame = frame[tabular].reset_index(drop=True)
            if len(frame) != len(texts):
                raise InputError(f"got {len(frame)} feature rows for {len(texts)} texts")
            for f in self.head.card.features:
                if f.type == "numeric":
                    try:
                        frame[f.name] = pd.to_numeric(frame[f.name], errors="raise")
                    except (ValueError, TypeError) as exc:
                        raise InputError(f"feature {f.name!r} must be numeric: {exc}") from None
        rows = _records(frame) if tabular else [{} for _ in texts]
        records = [{self.text_feature: t, **r} for t, r in zip(texts, rows)]
        records = [{n: rec[n] for n in self.head.card.feature_names} for rec in records]
        return texts, frame, records

    def _compute(self, texts: Sequence[str], features: Any) -> tuple[list[dict], np.ndarray]:
        self._check_active()
        texts, frame, records = self._inputs(texts, features)
        emb = self.encoder.embed(texts)
        X = head_frame(emb, frame if self.tabular else None)
        arr = np.asarray(self.estimator.predict_proba(X), dtype=float)
        if not np.isfinite(arr).all():
            bad = int(np.where(~np.isfinite(arr).all(axis=1))[0][0])
            raise InputError(f"model output for row {bad} contains NaN or infinity, which cannot be logged")
        return records, arr

    def predict_proba(self, texts: Sequence[str], features: Any = None, subject_ids: Sequence[str | None] | None = None, *,
                      within: Callable | None = None) -> np.ndarray:
        """Embed ``texts``, run the head, and log one decision per text (``{"label", "proba"}``).

        Args:
            texts: one text per decision (the head card's ``text`` feature).
            features: the head card's other features, a DataFrame (one row per text), or None if it has none.
            subject_ids: one subject identifier (or None) per text.

        Returns:
            The head's ``predict_proba`` output, shape (rows, classes).

        Raises:
            ModelNotActiveError: the foundation or the head is suspended or withdrawn.
            InputError: a text over the context length, features that do not match the card, bad subject ids.
                Nothing is written.
        """
        records, arr = self._compute(texts, features)
        classes = list(getattr(self.estimator, "classes_", range(arr.shape[1])))
        outputs = [{"label": _output_value(classes[int(np.argmax(p))], i), "proba": [float(x) for x in p]}
                   for i, p in enumerate(arr)]
        self._log(records, outputs, subject_ids, within)
        return arr

    def predict(self, texts: Sequence[str], features: Any = None, subject_ids: Sequence[str | None] | None = None, *,
                within: Callable | None = None) -> np.ndarray:
        """As ``predict_proba``, returning and logging labels only."""
        records, arr = self._compute(texts, features)
        classes = np.asarray(getattr(self.estimator, "classes_", np.arange(arr.shape[1])))
        labels = classes[np.argmax(arr, axis=1)]
        self._log(records, [{"label": _output_value(v, i)} for i, v in enumerate(labels.tolist())], subject_ids, within)
        return labels

    def _log(self, records: list[dict], outputs: list[Any], subject_ids: Sequence[Any] | None,
             within: Callable | None = None) -> None:
        if subject_ids is not None and len(subject_ids) != len(records):
            raise InputError(f"got {len(subject_ids)} subject ids for {len(records)} texts")
        now = utc_now()
        runtime = self.encoder.runtime()
        entries: list[Entry] = []
        private: list[PrivateValue] = []
        salts = iter(fresh_salts(len(records) * 3))
        for pos, (value, output) in enumerate(zip(records, outputs)):
            try:
                input_commitment, salt, value_bytes = commit({k: _native(v) for k, v in value.items()}, next(salts))
            except EntryError as exc:
                raise InputError(f"input row {pos} cannot be logged: {exc}") from None
            private.append(PrivateValue(pos, "input", input_commitment, salt, value_bytes))
            public, output_commitment, subject_commitment = ABSENT, None, None
            if self.visibility == "public-service":
                public = output
            else:
                output_commitment, o_salt, o_bytes = commit(output, next(salts))
                private.append(PrivateValue(pos, "output", output_commitment, o_salt, o_bytes))
            if subject_ids is not None and subject_ids[pos] is not None:
                sid = subject_ids[pos]
                if not isinstance(sid, str) or not sid:
                    raise InputError(f"subject id for row {pos} must be a non-empty string, got {sid!r}")
                subject_commitment, s_salt, s_bytes = commit(sid, next(salts))
                private.append(PrivateValue(pos, "subject", subject_commitment, s_salt, s_bytes))
            try:
                entries.append(Entry.from_object(decision_entry(
                    model=self.head.fingerprint, foundation=self.foundation.fingerprint, deployment=self.deployment,
                    time=now, input=input_commitment, runtime=runtime, output=public,
                    output_commitment=output_commitment, subject=subject_commitment), checked=True))
            except EntryError as exc:
                raise InputError(f"decision for row {pos} cannot be logged: {exc}") from None
        self._check_active()  # a suspension that landed while computing still refuses the batch
        self.last_batch = self.ledger.append(entries, private, within)


def _text_feature(head: RegisteredModel) -> str:
    texts = [f.name for f in head.card.features if f.type == "text"]
    if len(texts) != 1:
        raise ArtifactError(f"model {head.card.name} must have exactly one feature of type 'text' (the encoder's input),"
                            f" its card has {len(texts)}")
    return texts[0]


def _check_pair(foundation: RegisteredModel, head: RegisteredModel) -> None:
    declared = head.card.extra.get("foundation") if isinstance(head.card.extra, dict) else None
    if declared is not None and declared != foundation.fingerprint:
        raise ArtifactError(f"model {head.card.name} {head.card.version} was registered as an adaptation of {declared},"
                            f" not of {foundation.fingerprint}")
    _text_feature(head)


def wrap_encoder_classifier(
    ledger: Ledger,
    foundation_fingerprint: str,
    head_fingerprint: str,
    deployment: str,
    *,
    model_dir: str | os.PathLike | None = None,
    trusted: Sequence[str] = (),
    visibility: str | None = None,
    description: str = "",
) -> CapturedEncoderClassifier:
    """Wrap a registered foundation encoder and a registered head for logged decisions in ``deployment``.

    Args:
        foundation_fingerprint: the encoder's model directory (OMS root digest).
        head_fingerprint: the developer's head (skops); its card has one ``text``
            feature (the text) and the tabular features; ``card.extra["foundation"]``,
            when given, must name the foundation.
        model_dir: the developer's copy of the encoder's directory (checked against
            the registration); default the registry's stored copy.
        trusted: extra skops types the caller trusts for the head.
        visibility, description: for a deployment not yet declared (default ``private``).

    Raises:
        glasslog.registry.RegistryError: unknown model.
        ModelNotActiveError: either model is suspended or withdrawn (nothing is written).
        glasslog.registry.ArtifactError: a head card without one text feature, a head
            registered for another foundation, or a refused directory
            (``TokenizerMismatchError``, ``TamperedFileError``, ``PickleCheckpointError``).
        glasslog.registry.DeploymentError: declared with another visibility.
    """
    if not deployment or not isinstance(deployment, str):
        raise ValueError("deployment must be a non-empty name, e.g. 'agency.example/pretrial/2026-11'")
    registry = Registry(ledger)
    foundation = registry.get(foundation_fingerprint)
    head = registry.get(head_fingerprint)
    for role, m in (("foundation model", foundation), ("model", head)):
        if m.status != "active":
            last = m.history[-1]
            raise ModelNotActiveError(f"{role} {m.card.name} {m.card.version} is {m.status} since entry {last.index}"
                                      f" ({last.reason}); its decisions are refused")
    _check_pair(foundation, head)
    encoder = load_encoder(registry, foundation, model_dir)
    estimator = registry.load(head.fingerprint, trusted)
    deployments = Deployments(ledger)
    declared: Deployment | None = deployments.find(deployment)
    if declared is None:
        declared = deployments.declare(deployment, visibility or "private", description)
    elif visibility is not None and visibility != declared.visibility:
        raise DeploymentError(f"deployment {deployment!r} is declared {declared.visibility}, not {visibility}")
    return CapturedEncoderClassifier(ledger, foundation, head, deployment, encoder, estimator, registry, declared.visibility)


class EncoderHeadReplayer:
    """What replay runs for decisions that name a foundation: the registered encoder, then the registered head.

    ``predict`` / ``predict_proba`` take the logged inputs as a frame of the
    head card's features (the text column included), like an estimator.
    """

    def __init__(self, registry: Registry, head_fingerprint: str, foundation_fingerprint: str, trusted: Sequence[str] = ()):
        self.head = registry.get(head_fingerprint)
        self.foundation = registry.get(foundation_fingerprint)
        _check_pair(self.foundation, self.head)
        self.encoder = load_encoder(registry, self.foundation)
        self.estimator = registry.load(self.head.fingerprint, trusted)
        self.classes_ = getattr(self.estimator, "classes_", None)
        self._text = _text_feature(self.head)

    def _X(self, frame: pd.DataFrame) -> pd.DataFrame:
        embeddings = self.encoder.embed([str(t) for t in frame[self._text].tolist()])  # each distinct text once
        tabular = frame.drop(columns=[self._text]).reset_index(drop=True)
        return head_frame(embeddings, tabular if tabular.shape[1] else None)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        arr = self.predict_proba(frame)
        classes = np.asarray(self.classes_ if self.classes_ is not None else np.arange(arr.shape[1]))
        return classes[np.argmax(arr, axis=1)]

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self._X(frame)), dtype=float)

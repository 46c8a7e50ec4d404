"""Capture for generative models: every output of a causal LM logged as a ``generation`` entry.

Usage::

    gen = glasslog.capture.wrap_generator(log, fingerprint, "agency.example/letters/2026-11",
                                          model_dir="path/to/model", visibility="public-service")
    results = gen.generate(["Write a letter ..."], subject_ids=["case-17"], max_new_tokens=64)
    results[0].text, results[0].index                  # the output and its entry index
    glasslog.capture.receipt(log, results[0].index)    # a receipt, as for decisions

Each call appends one batch: one ``generation`` entry per prompt, one signed
checkpoint. The prompt (text, or chat messages rendered with the model's chat
template) goes into the log as a commitment; the output goes in the clear with
its token ids for ``public-service`` deployments, as a commitment to
``{"text", "tokens"}`` for ``private`` ones. Each entry carries the token
counts, the sampling parameters and seed, the runtime (torch and transformers
versions, dtype, device) and the TOPLOC activation commitments of the last
hidden state (``glasslog.verify.toploc``): one for the prompt's positions and
one per 32 of the positions generate() fed back (the output tokens but the
last, whose hidden state decoding never computes; it is checked by its logits).

The model directory is checked against the registered fingerprint (its OMS
root digest) before anything is loaded, and a suspended or withdrawn model is
refused (the kill switch) before and at every call.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..ledger import Entry, EntryError, Ledger, PrivateValue, commit, utc_now
from ..ledger.commitments import fresh_salts
from ..ledger.log import AppendResult
from ..records import ACTIVATION_SCHEME, generation_entry, reported_generation_entry
from ..registry import Deployment, DeploymentError, Deployments, RegisteredModel, Registry
from ..verify import toploc
from .sdk import InputError, ModelNotActiveError

__all__ = ["CapturedGenerator", "Generation", "wrap_generator", "directory_fingerprint", "runtime_info",
           "prompt_value", "render_prompt", "reported_generation"]

OMS_IGNORED = ("model.sig",)
"""Files of a model directory the fallback fingerprint leaves out (the publisher signature), as the registry does."""


def directory_fingerprint(path: str | os.PathLike) -> str:
    """The OMS root digest of a model directory, as ``"sha256:<hex>"``.

    Uses ``glasslog.registry.oms`` when it is installed (the registry's own
    definition), else computes the same value with ``model_signing``: SHA-256
    over the per-file SHA-256 digests in name order (the in-toto subject digest
    of an OMS signature).
    """
    try:
        from ..registry import oms  # type: ignore[attr-defined]

        for name in ("fingerprint_directory", "directory_fingerprint", "fingerprint_dir", "oms_fingerprint", "fingerprint"):
            fn = getattr(oms, name, None)
            if callable(fn):
                out = fn(path)
                return out if isinstance(out, str) else getattr(out, "fingerprint", str(out))
    except ImportError:
        pass
    import model_signing
    from model_signing._signing.signing import Payload

    config = model_signing.hashing.Config().set_ignored_paths(paths=list(OMS_IGNORED), ignore_git_paths=True)
    manifest = config.hash(Path(path))
    payload = Payload(manifest)
    return "sha256:" + payload.statement.pb.subject[0].digest["sha256"]


def runtime_info(model) -> dict:
    """Library versions, dtype and device of a loaded model, as logged in ``runtime``."""
    import torch
    import transformers

    p = next(model.parameters())
    return {"torch": torch.__version__, "transformers": transformers.__version__, "dtype": str(p.dtype).removeprefix("torch."),
            "device": str(p.device), "attention": str(getattr(model.config, "_attn_implementation", "") or "")}


def prompt_value(prompt: Any) -> dict:
    """The private value committed for a prompt: ``{"text": ...}`` or ``{"messages": [{"role", "content"}, ...]}``.

    Raises:
        InputError: neither a non-empty string nor a list of role/content messages.
    """
    if isinstance(prompt, str):
        if not prompt:
            raise InputError("a prompt must not be empty")
        return {"text": prompt}
    if isinstance(prompt, dict) and set(prompt) in ({"text"}, {"messages"}):
        return prompt_value(prompt.get("text", prompt.get("messages")))
    if isinstance(prompt, (list, tuple)) and prompt and all(
            isinstance(m, dict) and set(m) == {"role", "content"} and isinstance(m["role"], str)
            and isinstance(m["content"], str) for m in prompt):
        return {"messages": [{"role": m["role"], "content": m["content"]} for m in prompt]}
    raise InputError("a prompt must be text or a non-empty list of chat messages {'role': ..., 'content': ...},"
                     f" got {type(prompt).__name__}")


def render_prompt(tokenizer, value: dict) -> list[int]:
    """Token ids of a prompt value: plain text tokenized as is; messages with the tokenizer's chat template.

    ``verbose=False``: transformers' "Token indices sequence length is longer..." warning is not printed; the caller
    checks the length against the context and raises ``InputError`` instead.
    """
    if "text" in value:
        return list(tokenizer(value["text"], add_special_tokens=True, verbose=False)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise InputError("the model has no chat template; send plain text prompts")
    ids = tokenizer.apply_chat_template(value["messages"], add_generation_prompt=True, tokenize=True, return_dict=False,
                                        tokenizer_kwargs={"verbose": False})
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return [int(t) for t in ids]


@dataclass
class Generation:
    """One logged output.

    Attributes:
        index: the entry's index in the log.
        text: the generated text (special tokens skipped).
        tokens: the output token ids (as logged or committed).
        prompt_tokens: how many tokens the rendered prompt has.
        commitments: the activation commitments (raw bytes).
        receipt_token: for a prompt with a subject id, the subject's receipt token (``grt_<index>_...``): with it
            they read their own generation and its receipt, and flag it, over the API (only its hash is stored).
    """

    index: int
    text: str
    tokens: list[int]
    prompt_tokens: int
    commitments: list[bytes] = field(repr=False, default_factory=list)
    receipt_token: str | None = field(repr=False, default=None)


NEUTRAL_DECODING = {name: None for name in (
    "repetition_penalty", "no_repeat_ngram_size", "encoder_repetition_penalty", "encoder_no_repeat_ngram_size",
    "bad_words_ids", "min_length", "min_new_tokens", "forced_bos_token_id", "forced_eos_token_id",
    "exponential_decay_length_penalty", "begin_suppress_tokens", "sequence_bias", "guidance_scale", "typical_p",
    "epsilon_cutoff", "eta_cutoff", "min_p", "top_h", "watermarking_config", "renormalize_logits")} | {"num_beams": 1}
"""Decoding options a model directory's ``generation_config.json`` may set (and ``transformers`` would apply
silently) turned off, so that the logged sampling parameters, the registered config's ``suppress_tokens`` and the
deployment's watermark are the whole decoding, as replay recomputes it."""

SAMPLING_KEYS = ("max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "seed")


def sampling_params(max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> dict:
    """Checked sampling parameters as logged (a seed is drawn when sampling without one, so it is always on the record)."""
    if type(max_new_tokens) is not int or max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if not isinstance(do_sample, bool):
        raise InputError(f"do_sample must be true or false, got {do_sample!r}")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not 0 < float(temperature) <= 100:
        raise InputError(f"temperature must be a number in (0, 100], got {temperature!r}")
    if top_k is not None and (type(top_k) is not int or top_k < 1):
        raise InputError(f"top_k must be a positive integer or None, got {top_k!r}")
    if top_p is not None and (not isinstance(top_p, (int, float)) or isinstance(top_p, bool) or not 0 < float(top_p) <= 1):
        raise InputError(f"top_p must be in (0, 1] or None, got {top_p!r}")
    if seed is not None and (type(seed) is not int or not 0 <= seed < 2**53):
        raise InputError(f"seed must be a non-negative integer below 2**53, got {seed!r}")
    if do_sample and seed is None:
        seed = secrets.randbelow(2**31)
    return {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "temperature": float(temperature),
            "top_k": top_k, "top_p": None if top_p is None else float(top_p), "seed": seed}


@dataclass
class CapturedGenerator:
    """A registered causal LM wrapped so that its generations are logged (see module docstring).

    Attributes:
        ledger, model, deployment, visibility, registry: as for ``CapturedModel``.
        lm, tokenizer: the loaded transformers model and tokenizer.
        model_dir: the checked model directory.
        watermark: the deployment's watermark (``glasslog.watermark.Watermark``) or None.
        last_batch: what the last call appended.
    """

    ledger: Ledger
    model: RegisteredModel
    deployment: str
    lm: Any
    tokenizer: Any
    registry: Registry
    model_dir: Path
    visibility: str = "private"
    watermark: Any = None
    last_batch: AppendResult | None = None

    @property
    def context_length(self) -> int:
        cfg = self.lm.config
        return int(getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None) or 2**31)

    def _check_active(self) -> None:
        current = self.registry.get(self.model.fingerprint)
        self.model = current
        if current.status != "active":
            last = current.history[-1]
            raise ModelNotActiveError(
                f"model {current.card.name} {current.card.version} ({current.fingerprint[:19]}...) is {current.status}"
                f" since entry {last.index} ({last.reason}); its generations are refused")

    def run(self, prompts: Sequence[Any], **sampling) -> tuple[list[dict], list[list[int]], list[list[int]], list[list[bytes]], dict]:
        """Generate without logging: ``(prompt values, prompt ids, output ids, commitments, sampling)`` per prompt.

        ``generate`` is this plus the log; benchmarks time the two apart.
        """
        import torch

        params = sampling_params(**sampling)
        if not isinstance(prompts, (list, tuple)) or not prompts:
            raise InputError("prompts must be a non-empty list of texts or chat message lists")
        values = [prompt_value(p) for p in prompts]
        ids = [render_prompt(self.tokenizer, v) for v in values]
        limit = self.context_length
        for i, p in enumerate(ids):
            if not p:
                raise InputError(f"prompt {i} has no tokens")
            if len(p) + params["max_new_tokens"] > limit:
                raise InputError(f"prompt {i} is {len(p)} tokens; with max_new_tokens={params['max_new_tokens']} it exceeds"
                                 f" the model's context length of {limit} tokens")
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        width = max(len(p) for p in ids)
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, p in enumerate(ids):  # left padding, as decoder-only generation needs
            input_ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        kwargs: dict[str, Any] = {"max_new_tokens": params["max_new_tokens"], "do_sample": params["do_sample"],
                                  "pad_token_id": pad, "output_hidden_states": True, "return_dict_in_generate": True,
                                  **NEUTRAL_DECODING}
        if params["do_sample"]:
            kwargs.update(temperature=params["temperature"], top_k=params["top_k"] if params["top_k"] is not None else 0,
                          top_p=params["top_p"] if params["top_p"] is not None else 1.0)
        else:
            kwargs.update(temperature=None, top_k=None, top_p=None)
        if self.watermark is not None:
            kwargs["logits_processor"] = [self.watermark.processor(self.lm.config.vocab_size)]
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            if params["seed"] is not None:
                torch.manual_seed(params["seed"])
            out = self.lm.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        seqs = out.sequences[:, width:]
        eos = self.lm.generation_config.eos_token_id
        eos_set = set(eos if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else []))
        outputs: list[list[int]] = []
        for row in seqs.tolist():
            toks = []
            for t in row:
                toks.append(t)
                if t in eos_set:
                    break
            outputs.append(toks)
        # last hidden state: prefill (B, width, d), then one (B, 1, d) per decode step
        steps = out.hidden_states
        prefill = steps[0][-1]
        decode = torch.cat([s[-1] for s in steps[1:]], dim=1) if len(steps) > 1 else prefill[:, :0]
        chunks_bits = []
        counts = []
        for i, p in enumerate(ids):
            n = len(outputs[i])
            hidden = torch.cat([prefill[i, width - len(p):], decode[i, : max(n - 1, 0)]], dim=0)
            bounds = toploc.chunk_bounds(len(p), max(n - 1, 0))
            bits = toploc._chunks_bits(hidden, bounds)
            chunks_bits.extend(toploc._pad(b, toploc.TOPK) for b in bits)
            counts.append(len(bits))
        flat = toploc.encode_many(chunks_bits)  # one vectorised call for the whole batch
        commitments, pos = [], 0
        for c in counts:
            commitments.append(flat[pos: pos + c])
            pos += c
        return values, ids, outputs, commitments, params

    def generate(self, prompts: Sequence[Any], subject_ids: Sequence[str | None] | None = None,
                 **sampling) -> list[Generation]:
        """Generate for each prompt and log one ``generation`` entry per prompt, in one batch.

        Args:
            prompts: texts, or chat message lists (``[{"role": "user", "content": ...}]``) rendered with the
                model's chat template.
            subject_ids: one subject identifier (or None) per prompt (logged as commitments).
            **sampling: ``max_new_tokens`` (64), ``do_sample`` (False: greedy), ``temperature``, ``top_k``,
                ``top_p``, ``seed`` (drawn and logged when sampling without one).

        Returns:
            One ``Generation`` per prompt, in order.

        Raises:
            ModelNotActiveError: the model is suspended or withdrawn (nothing is generated or written).
            InputError: bad prompts, sampling parameters or subject ids, or a prompt over the context length.
        """
        self._check_active()
        if subject_ids is not None and (not isinstance(subject_ids, (list, tuple)) or len(subject_ids) != len(prompts)):
            raise InputError(f"got {len(subject_ids) if isinstance(subject_ids, (list, tuple)) else subject_ids!r}"
                             f" subject ids for {len(prompts)} prompts")
        for pos, sid in enumerate(subject_ids or []):
            if sid is not None and (not isinstance(sid, str) or not sid):
                raise InputError(f"subject id for prompt {pos} must be a non-empty string, got {sid!r}")
        values, ids, outputs, commitments, params = self.run(prompts, **sampling)
        return self.log_generations(values, ids, outputs, commitments, params, subject_ids)

    def log_generations(self, values: list[dict], ids: list[list[int]], outputs: list[list[int]],
                        commitments: list[list[bytes]], params: dict,
                        subject_ids: Sequence[str | None] | None = None) -> list[Generation]:
        """Log what ``run`` returned (one batch, one entry per prompt); ``generate`` is ``run`` then this.

        Raises:
            ModelNotActiveError: the model was suspended meanwhile (nothing is written).
            InputError: an entry that cannot be logged.
        """
        runtime = runtime_info(self.lm)
        now = utc_now()
        entries: list[Entry] = []
        private: list[PrivateValue] = []
        texts = [self.tokenizer.decode(o, skip_special_tokens=True) for o in outputs]
        salts = iter(fresh_salts(len(values) * 3))
        for pos, (value, p, o, text, cs) in enumerate(zip(values, ids, outputs, texts, commitments)):
            prompt_c, salt, vbytes = commit(value, next(salts))
            private.append(PrivateValue(pos, "prompt", prompt_c, salt, vbytes))
            public = self.visibility == "public-service"
            oc = sc = None
            if not public:
                oc, osalt, obytes = commit({"text": text, "tokens": o}, next(salts))
                private.append(PrivateValue(pos, "output", oc, osalt, obytes))
            if subject_ids is not None and subject_ids[pos] is not None:
                sc, ssalt, sbytes = commit(subject_ids[pos], next(salts))
                private.append(PrivateValue(pos, "subject", sc, ssalt, sbytes))
            try:
                entries.append(Entry.from_object(generation_entry(
                    model=self.model.fingerprint, deployment=self.deployment, time=now, prompt=prompt_c,
                    tokens={"prompt": len(p), "output": len(o)}, sampling=params, runtime=runtime,
                    activations={"scheme": ACTIVATION_SCHEME, "topk": toploc.TOPK, "chunk": toploc.CHUNK,
                                 "positions": "prompt, then output tokens but the last",
                                 "commitments": [toploc.to_b64(c) for c in cs]},
                    output=text if public else None, output_tokens=o if public else None, output_commitment=oc,
                    subject=sc, watermark=self.watermark.key_commitment if self.watermark is not None else None), checked=True))
            except EntryError as exc:
                raise InputError(f"generation for prompt {pos} cannot be logged: {exc}") from None
        self._check_active()  # a suspension that landed while generating still refuses the batch
        tokens: list[str | None] = [None] * len(values)

        def issue_tokens(tx, first: int) -> None:  # inside the batch's transaction: tokens exist exactly when it does
            from ..access import new_receipt_token, store_receipt_tokens

            tokens[:] = [new_receipt_token(first + k) if subject_ids is not None and subject_ids[k] is not None else None
                         for k in range(len(values))]
            store_receipt_tokens(tx, [t for t in tokens if t])

        self.last_batch = self.ledger.append(entries, private, within=issue_tokens if subject_ids is not None else None)
        first = self.last_batch.first_index
        return [Generation(first + k, texts[k], outputs[k], len(ids[k]), commitments[k], tokens[k])
                for k in range(len(values))]


def _load(model_dir: Path):
    import transformers

    from ..demo.testmodels import load_causal_lm

    transformers.utils.logging.disable_progress_bar()
    return load_causal_lm(model_dir)


def wrap_generator(ledger: Ledger, fingerprint: str, deployment: str, *, model_dir: str | os.PathLike | None = None,
                   visibility: str | None = None, description: str = "") -> CapturedGenerator:
    """Wrap a registered causal LM for logged generation in ``deployment``.

    Args:
        fingerprint: the registered model's fingerprint (OMS root digest of its directory).
        model_dir: the model directory (safetensors, config, tokenizer, chat template); checked against the
            fingerprint before loading. Default: the registry's stored copy, where it keeps one.
        visibility: for a deployment not yet declared: ``private`` (default) or ``public-service``.

    Raises:
        glasslog.registry.RegistryError: unknown model.
        ModelNotActiveError: the model is suspended or withdrawn (nothing is written).
        glasslog.registry.ArtifactError: the directory does not match the fingerprint, or holds pickle weights
            (``glasslog.registry.oms.TokenizerMismatchError`` for another tokenizer, ``TamperedFileError`` naming a
            changed, missing or extra file).
        glasslog.registry.DeploymentError: declared with another visibility.
    """
    from ..registry import ArtifactError

    if not deployment or not isinstance(deployment, str):
        raise ValueError("deployment must be a non-empty name, e.g. 'agency.example/letters/2026-11'")
    registry = Registry(ledger)
    model = registry.get(fingerprint)
    if model.status != "active":
        last = model.history[-1]
        raise ModelNotActiveError(f"model {model.card.name} {model.card.version} is {model.status} since entry {last.index}"
                                  f" ({last.reason}); its generations are refused")
    if model_dir is None:
        finder = getattr(registry, "model_dir", None) or getattr(registry, "directory", None)
        if finder is None:
            raise ArtifactError("give model_dir: this registry keeps no copy of model directories")
        model_dir = finder(model.fingerprint)
    path = Path(model_dir)
    if not path.is_dir():
        raise ArtifactError(f"model directory {path} does not exist")
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt"))
    if pickles:
        raise ArtifactError(f"model directory {path} holds pickle-format weights {pickles}: refused, never loaded")
    if getattr(model, "artifact", None):  # the registered files: a changed tokenizer or file is named, before loading
        from ..registry import oms

        oms.check_against_record(path, model.artifact)
    actual = directory_fingerprint(path)
    if actual != model.fingerprint:
        raise ArtifactError(f"model directory {path} has fingerprint {actual}, not the registered {model.fingerprint}:"
                            " refusing to load it")
    lm, tokenizer = _load(path)
    deployments = Deployments(ledger)
    declared: Deployment | None = deployments.find(deployment)
    if declared is None:
        declared = deployments.declare(deployment, visibility or "private", description)
    elif visibility is not None and visibility != declared.visibility:
        raise DeploymentError(f"deployment {deployment!r} is declared {declared.visibility}, not {visibility}")
    from ..watermark import active_watermark

    wm = active_watermark(ledger, deployment, tokenizer_vocab=lm.config.vocab_size)
    return CapturedGenerator(ledger, model, deployment, lm, tokenizer, registry, path, declared.visibility, wm)


def reported_generation(*, source: str, deployment: str, visibility: str, operation: str, model: str | None,
                        reported_model: dict, prompt: dict | None = None, output: list[dict] | None = None,
                        subject: str | None = None, time: str | None = None, position: int = 0,
                        salts: Sequence[bytes] | None = None, **fields: Any) -> tuple[dict, list[PrivateValue]]:
    """A ``generation`` entry for an output glasslog did not produce itself, and its private values.

    ``source`` is ``otlp`` (an application's OpenTelemetry span) or ``gateway`` (seen on the wire by the
    OpenAI-compatible gateway). There are no activation commitments, token ids or runtime, so such an entry is bound
    to the weights only by replay. As for ``generate``: the prompt is committed (kind ``prompt``); the output is in
    the clear for ``public-service`` deployments (its text; a list of texts for several choices) and committed for
    ``private`` ones (kind ``output``, the output messages). Content that did not reach glasslog is absent and
    ``captured`` says so.

    Args:
        model: the registered model's fingerprint, or None for a model that is not registered.
        reported_model: ``{"request": name, "response": name}`` as reported.
        prompt: the prompt's private value, ``{"text": ...}`` or ``{"messages": [...]}``, or None if not captured.
        output: the output messages (``{"role", "content"}``, one per choice) or None if not captured.
        subject: the subject's identifier (committed, kind ``subject``, with a fresh salt), or None.
        position: the entry's position in its batch (for the private values).
        salts: two fresh salts (``fresh_salts``), drawn here if not given.
        **fields: the optional fields of ``glasslog.records.reported_generation_entry`` (``tokens``, ``sampling``,
            ``provider``, ``response_id``, ``finish_reasons``, ``conversation``, ``span``, ``incomplete``, ...); None
            values are left out.

    Returns:
        ``(entry object, private values)``, the entry validated.

    Raises:
        EntryError: a field fails the schema (named).
    """
    if output is not None and not output:
        output = None  # no choices came back: nothing to log as the output
    salt = iter(salts if salts is not None else fresh_salts(2))
    private: list[PrivateValue] = []
    prompt_c = output_c = public = subject_c = None
    if prompt is not None:
        prompt_c, s, v = commit(prompt, next(salt))
        private.append(PrivateValue(position, "prompt", prompt_c, s, v))
    if output is not None:
        if visibility == "public-service":
            texts = [m.get("content") if isinstance(m.get("content"), str) else "" for m in output]
            public = texts[0] if len(texts) == 1 else texts
        else:
            output_c, s, v = commit({"messages": output}, next(salt))
            private.append(PrivateValue(position, "output", output_c, s, v))
    if subject is not None:
        subject_c, s, v = commit(subject)
        private.append(PrivateValue(position, "subject", subject_c, s, v))
    entry = reported_generation_entry(
        source=source, deployment=deployment, time=time or utc_now(), operation=operation,
        reported_model=reported_model, captured={"input": prompt is not None, "output": output is not None},
        model=model, prompt=prompt_c, output=public, output_commitment=output_c, subject=subject_c, **fields)
    return entry, private

"""Test models built from a config with a fixed seed: nothing is downloaded.

``build_causal_lm(path)`` writes a Hugging Face model directory
(``model.safetensors``, ``config.json``, ``generation_config.json``,
``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``,
``chat_template.jinja``) for a small Llama-architecture causal LM with random
weights drawn from ``torch.manual_seed(seed)`` and a character-level tokenizer
over printable ASCII made with ``tokenizers`` from a fixed vocabulary. The same
arguments always give the same bytes, so the directory's OMS fingerprint is
stable across runs and machines with the same torch.

It is a test model: it writes gibberish. Every glasslog command that takes
such a directory takes a real model directory the same way (safetensors
weights, ``config.json``, tokenizer files, chat template), e.g. one saved with
``save_pretrained``.

Sizes: ``SIZES["small"]`` (hidden 128, 4 layers, about 0.8M parameters) for
tests; ``SIZES["minilm"]`` (hidden 384, 8 layers, about 22M parameters, the
size of all-MiniLM-L6-v2) for benchmarks.
"""

from __future__ import annotations

import json
import os
import shutil
import string
from pathlib import Path

__all__ = ["SIZES", "CHAT_TEMPLATE", "build_causal_lm", "build_tokenizer", "load_causal_lm", "load_tokenizer",
           "perturbed_copy"]

SIZES = {
    "small": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
              "intermediate_size": 512},
    "minilm": {"hidden_size": 384, "num_hidden_layers": 8, "num_attention_heads": 6, "num_key_value_heads": 6,
               "intermediate_size": 1920},
}
"""Named configurations (passed to ``LlamaConfig``)."""

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""The test model's chat template (role markers are written as plain characters)."""

MAX_POSITIONS = 512
"""Context length of the test models, in tokens (one token per character)."""


def _vocab() -> dict[str, int]:
    chars = list(dict.fromkeys(string.printable))  # digits, letters, punctuation, whitespace, in a fixed order
    tokens = SPECIALS + chars
    return {t: i for i, t in enumerate(tokens)}


def build_tokenizer():
    """A character-level ``PreTrainedTokenizerFast`` over printable ASCII (unknown characters map to ``<unk>``)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(vocab=_vocab(), merges=[], unk_token="<unk>", fuse_unk=True))
    tok.add_special_tokens(SPECIALS)
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=MAX_POSITIONS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_causal_lm(path: str | os.PathLike, *, seed: int = 0, size: str = "small", overwrite: bool = False) -> Path:
    """Write a test causal LM directory at ``path`` (see module docstring) and return its path.

    Args:
        seed: the weights' seed; another seed is another model (same architecture).
        size: a key of ``SIZES``.
        overwrite: replace an existing directory's files; otherwise an existing
            complete directory is returned as it is.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    out = Path(path)
    if (out / "model.safetensors").is_file() and (out / "config.json").is_file() and not overwrite:
        return out
    out.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    config = LlamaConfig(vocab_size=len(vocab), max_position_embeddings=MAX_POSITIONS, rms_norm_eps=1e-6,
                         pad_token_id=vocab["<pad>"], bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"],
                         tie_word_embeddings=False, **SIZES[size])
    previous = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        with torch.no_grad():  # wider than the default init, so the random model's choices are not all ties
            for name, p in model.named_parameters():
                if "norm" not in name:
                    p.normal_(0.0, 0.06 if p.dim() > 1 else 0.02)
    finally:
        torch.random.set_rng_state(previous)
    model.eval()
    # A random model would sample its special tokens (</s> among them) about once per 100 steps; suppressing them in
    # the registered generation config keeps outputs at their requested length. Replay applies the same suppression.
    model.generation_config = GenerationConfig(bos_token_id=vocab["<s>"], eos_token_id=vocab["</s>"],
                                               pad_token_id=vocab["<pad>"], suppress_tokens=[vocab[t] for t in SPECIALS])
    model.save_pretrained(out, safe_serialization=True)
    tok = build_tokenizer()
    tok.save_pretrained(out)
    template = out / "chat_template.jinja"
    if not template.exists():
        template.write_text(CHAT_TEMPLATE, encoding="utf-8")
    # Say what this is, in the directory itself.
    (out / "README.md").write_text(
        f"# glasslog test model ({size}, seed {seed})\n\nA {config.num_hidden_layers}-layer Llama-architecture causal LM"
        f" with hidden size {config.hidden_size} and random weights (torch.manual_seed({seed})), built from a config by"
        " glasslog.demo.testmodels; a character-level tokenizer over printable ASCII. It writes gibberish: it exists to"
        " test logging, activation commitments, replay and watermarks without downloading anything.\n",
        encoding="utf-8")
    meta = json.loads((out / "config.json").read_text())
    meta.setdefault("glasslog_test_model", {"seed": seed, "size": size})
    (out / "config.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out


def load_causal_lm(path: str | os.PathLike, dtype=None):
    """``(model, tokenizer)`` from a model directory, offline, safetensors only, eval mode."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar in glasslog's own output
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, use_safetensors=True,
                                                 dtype=dtype or torch.float32, trust_remote_code=False)
    model.eval()
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    return model, tok


def load_tokenizer(path: str | os.PathLike):
    """The tokenizer of a model directory, offline."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)


def perturbed_copy(model_dir: str | os.PathLike, out_dir: str | os.PathLike, *, kind: str = "layer-noise",
                   scale: float = 0.01, layer: int | None = None, seed: int = 0) -> Path:
    """Copy a model directory with altered weights.

    kind ``layer-noise``: Gaussian noise of ``scale`` times each weight matrix's standard deviation on every
    matrix of one decoder layer (default the middle one).
    """
    import torch
    from safetensors.torch import load_file, save_file

    src, dst = Path(model_dir), Path(out_dir)
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    if kind != "layer-noise":
        raise ValueError(f"unknown perturbation {kind!r}")
    cfg = json.loads((src / "config.json").read_text())
    layers = int(cfg.get("num_hidden_layers", 1))
    layer = layers // 2 if layer is None else layer
    path = dst / "model.safetensors"
    tensors = load_file(str(path))
    g = torch.Generator().manual_seed(seed)
    prefix = f"layers.{layer}."
    hit = 0
    for name, t in tensors.items():
        if prefix in name and t.dim() == 2:
            tensors[name] = t + torch.randn(t.shape, generator=g, dtype=t.dtype) * (scale * float(t.float().std()))
            hit += 1
    if not hit:
        raise ValueError(f"no weight matrices of layer {layer} in {src}")
    save_file(tensors, str(path), metadata={"format": "pt"})
    return dst

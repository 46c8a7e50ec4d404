"""Capture overhead on generation, replay time per token, commitment encoding time.

One command:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/generation.py [--sizes small,minilm] [--prompts 8] [--tokens 128] [--rounds 3] [--json PATH]

For each test causal LM size (glasslog.demo.testmodels: ``small`` about 1M
parameters, ``minilm`` about 22M, the size of all-MiniLM-L6-v2; random weights,
fixed seed, nothing downloaded), in the same process and alternating rounds:

- plain: ``model.generate`` (greedy, a padded batch of ``--prompts``, ``--tokens`` new tokens), no hidden states;
- captured: ``wrap_generator(...).generate``: the same call with hidden states, TOPLOC commitments for every
  chunk, one ``generation`` entry per prompt appended to a SQLite log with its signed checkpoint;

tokens/s is generated output tokens over wall time (median of ``--rounds``),
overhead = plain / captured - 1. Replay: ``replay_generations`` over the
logged generations (prefill + activation and token checks) in seconds per
generated token, against generation seconds per token. Encoding: one
commitment alone and in a batch of 16. Wall and CPU time (``time.process_time``, one
torch thread) are both reported: on a shared machine the CPU-time figures are the stable ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="small,minilm")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: 2 shared cores oversubscribe badly)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(args.threads)

    from glasslog.capture import open_log
    from glasslog.capture.generator import wrap_generator
    from glasslog.demo.generative import register_model_dir
    from glasslog.demo.testmodels import build_causal_lm
    from glasslog.verify import toploc
    from glasslog.verify.generation_replay import calibration_prompts, replay_generations

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    work = Path(tempfile.mkdtemp(prefix="glasslog-gen-bench-"))
    out = {"torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads(),
           "prompts": args.prompts, "tokens": args.tokens, "sizes": {}}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch of {args.prompts} prompts, {args.tokens} new"
          " tokens, greedy", flush=True)

    rng = np.random.default_rng(0)
    h = torch.randn(32 * 384).to(torch.bfloat16).view(torch.uint16).numpy()
    toploc.encode(h)
    t, c = time.perf_counter(), time.process_time()
    for _ in range(200):
        toploc.encode(h)
    one = (time.perf_counter() - t) / 200
    one_cpu = (time.process_time() - c) / 200
    chunks = [rng.permutation(h) for _ in range(64)]
    t, c = time.perf_counter(), time.process_time()
    for _ in range(10):
        toploc.encode_many(chunks[:16])
    many = (time.perf_counter() - t) / 10 / 16
    many_cpu = (time.process_time() - c) / 10 / 16
    print(f"commitment encoding (32 tokens x 384): {one * 1e3:.3f} ms alone ({one_cpu * 1e3:.3f} ms CPU),"
          f" {many * 1e3:.3f} ms each in a batch of 16 ({many_cpu * 1e3:.3f} ms CPU)")
    out["encode_ms"] = {"alone": one * 1e3, "alone_cpu": one_cpu * 1e3, "batch16_each": many * 1e3,
                        "batch16_each_cpu": many_cpu * 1e3}

    for size in args.sizes.split(","):
        md = build_causal_lm(work / size, seed=0, size=size)
        log = open_log(work / f"log-{size}", create=True, origin=f"bench.example/{size}")
        fp = register_model_dir(log, md, name=f"bench-{size}", version="1")
        gen = wrap_generator(log, fp, f"bench/{size}", model_dir=md, visibility="private")
        lm, tok = gen.lm, gen.tokenizer
        params = sum(p.numel() for p in lm.parameters())
        prompts = calibration_prompts(args.prompts, seed=1)
        ids = [tok(p)["input_ids"] for p in prompts]
        width = max(map(len, ids))
        input_ids = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(input_ids)
        for i, p in enumerate(ids):
            input_ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1

        def plain(lm=lm, input_ids=input_ids, mask=mask, tok=tok, width=width):
            with torch.inference_mode():
                o = lm.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=args.tokens, do_sample=False,
                                pad_token_id=tok.pad_token_id, temperature=None, top_k=None, top_p=None)
            return int((o[:, width:] != tok.pad_token_id).sum())

        def captured(gen=gen, prompts=prompts):
            res = gen.generate(prompts, max_new_tokens=args.tokens)
            return sum(len(r.tokens) for r in res)

        plain()
        captured()  # warm up
        tp, tc, cp, cc, indexes = [], [], [], [], []
        for _ in range(args.rounds):
            t, c = time.perf_counter(), time.process_time()
            n_plain = plain()
            tp.append(n_plain / (time.perf_counter() - t))
            cp.append(n_plain / (time.process_time() - c))
            t, c = time.perf_counter(), time.process_time()
            n_cap = captured()
            tc.append(n_cap / (time.perf_counter() - t))
            cc.append(n_cap / (time.process_time() - c))
            indexes += range(gen.last_batch.first_index, gen.last_batch.first_index + len(prompts))
        p_med, c_med = statistics.median(tp), statistics.median(tc)
        p_cpu, c_cpu = statistics.median(cp), statistics.median(cc)
        t = time.perf_counter()
        rep = replay_generations(log, indexes=indexes[: len(prompts)], model_dir=md)
        replay_s = time.perf_counter() - t
        replay_tokens = sum(json.loads(log.entry(i))["tokens"]["output"] for i in indexes[: len(prompts)])
        row = {"parameters": params, "plain_tokens_per_s": p_med, "captured_tokens_per_s": c_med,
               "overhead": p_med / c_med - 1, "plain_rounds": tp, "captured_rounds": tc,
               "plain_tokens_per_cpu_s": p_cpu, "captured_tokens_per_cpu_s": c_cpu, "overhead_cpu": p_cpu / c_cpu - 1,
               "generation_ms_per_token": 1e3 / c_med, "replay_ms_per_token": replay_s / replay_tokens * 1e3,
               "replay_ok": rep.ok, "replay_exact": rep.exact, "replay_within": rep.within_tolerance}
        out["sizes"][size] = row
        print(f"{size:7s} {params / 1e6:5.1f}M params: plain {p_med:7.0f} tok/s, captured (hidden states + commitments +"
              f" log) {c_med:7.0f} tok/s, overhead {row['overhead']:+.1%} (wall), {row['overhead_cpu']:+.1%} (CPU time:"
              f" {p_cpu:.0f} vs {c_cpu:.0f} tok per CPU-s); replay {row['replay_ms_per_token']:.2f} ms/token"
              f" vs generation {row['generation_ms_per_token']:.2f} ms/token (replay ok={rep.ok}, exact {rep.exact}/"
              f"{rep.checked})", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

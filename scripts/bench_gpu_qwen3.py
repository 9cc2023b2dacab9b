"""The CUDA path at the paper's scale, with randomly initialised weights of the real Qwen3 4B/8B/14B/32B
architectures (conf/arch/*.json, their published configs): decoding speed and memory do not depend on the weights'
values, so no download is needed.

For each architecture, one at a time on one GPU, in bfloat16 with SDPA attention:
  materialise_s       time to allocate and initialise the weights on the GPU (not a disk load)
  weights_gb          torch.cuda.memory_allocated after it, against sale.llm.placement's prediction (predicted_gb)
  decode_tok_s_bs1    greedy decode of 128 tokens after a 512-token prompt, one sequence
  decode_tok_s_bs8    the same with 8 sequences (aggregate tokens/s)
  jury_batched_speedup  3 plans of ~300 tokens sharing a ~200-token prefix: one at a time against one batched
                      pass (TransformersLLM.score_options_batch's method: shared prefix once, suffixes as a batch)
  peak_gb             peak memory during the above
Writes data/bench/gpu_qwen3.{parquet,md} with the GPU's name.

    .venv/bin/python scripts/bench_gpu_qwen3.py                    # needs a CUDA GPU with ~80 GB for the 32B
    .venv/bin/python scripts/bench_gpu_qwen3.py --arch qwen3-4b    # one architecture
    .venv/bin/python scripts/bench_gpu_qwen3.py --tiny --device cpu --out /tmp/x   # the code path, shrunk, on a CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sale import CONF_DIR, DATA_DIR

ARCHS = ["qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b"]


def build(arch: str, device: str, tiny: bool):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    data = json.loads((CONF_DIR / "arch" / f"{arch}.json").read_text())
    if tiny:  # same architecture, shrunk: for checking this script without a GPU
        data.update(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            vocab_size=1024,
        )
    config = AutoConfig.for_model(data.pop("model_type"), **data)
    config._attn_implementation = "sdpa"
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    sync(device)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval()
    sync(device)
    return model, config, time.perf_counter() - t0


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def decode_tok_s(model, vocab: int, device: str, batch: int, prompt: int = 512, new: int = 128) -> float:
    import torch

    ids = torch.randint(0, vocab, (batch, prompt), device=device)
    with torch.no_grad():
        warm = ids[:, :16]
        model.generate(
            warm,
            attention_mask=torch.ones_like(warm),
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            pad_token_id=0,
        )  # warm-up
        sync(device)
        t0 = time.perf_counter()
        model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
        )
        sync(device)
    return batch * new / (time.perf_counter() - t0)


def jury_speedup(model, vocab: int, device: str, reps: int = 3) -> float:
    import torch
    from transformers import DynamicCache

    prefix = torch.randint(0, vocab, (1, 200), device=device)
    suffixes = [torch.randint(0, vocab, (1, n), device=device) for n in (90, 110, 100)]
    lm = model.get_output_embeddings()

    def one_at_a_time():
        for s in suffixes:
            h = model.base_model(input_ids=torch.cat([prefix, s], 1)).last_hidden_state
            lm(h[:, -1])

    def batched():
        cache = DynamicCache()
        model.base_model(input_ids=prefix, cache=cache, use_cache=True)
        width = max(s.shape[1] for s in suffixes)
        batch = torch.zeros((len(suffixes), width), dtype=torch.long, device=device)
        mask = torch.zeros((len(suffixes), 200 + width), dtype=torch.long, device=device)
        mask[:, :200] = 1
        for i, s in enumerate(suffixes):
            batch[i, : s.shape[1]] = s[0]
            mask[i, 200 : 200 + s.shape[1]] = 1
        cache.batch_repeat_interleave(len(suffixes))
        pos = torch.arange(200, 200 + width, device=device).expand(len(suffixes), -1)
        h = model.base_model(
            input_ids=batch, attention_mask=mask, cache=cache, position_ids=pos, use_cache=True
        ).last_hidden_state
        lm(h[torch.arange(len(suffixes)), torch.tensor([s.shape[1] - 1 for s in suffixes], device=device)])

    times = {}
    with torch.no_grad():
        for name, fn in (("single", one_at_a_time), ("batched", batched)):
            fn()
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            sync(device)
            times[name] = time.perf_counter() - t0
    return times["single"] / times["batched"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", nargs="+", default=ARCHS, choices=ARCHS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="shrink each architecture (check the script on a CPU)")
    ap.add_argument("--out", type=Path, default=DATA_DIR / "bench")
    args = ap.parse_args()
    import pandas as pd
    import torch

    from sale.llm.placement import footprint

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "no CUDA GPU on this machine: nothing measured (use --tiny --device cpu to check the script)",
            file=sys.stderr,
        )
        return 2
    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    rows = []
    for arch in args.arch:
        print(f"[gpu] {arch} ...", file=sys.stderr, flush=True)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        model, config, materialise_s = build(arch, args.device, args.tiny)
        allocated = torch.cuda.memory_allocated() / 1e9 if args.device.startswith("cuda") else float("nan")
        predicted = footprint(arch, {"arch": arch, "dtype": "bfloat16"}, 0, 8192).weights_gb
        m = {
            "materialise_s": materialise_s,
            "weights_gb": allocated,
            "predicted_gb": predicted,
            "decode_tok_s_bs1": decode_tok_s(model, config.vocab_size, args.device, 1),
            "decode_tok_s_bs8": decode_tok_s(model, config.vocab_size, args.device, 8),
            "jury_batched_speedup": jury_speedup(model, config.vocab_size, args.device),
        }
        if args.device.startswith("cuda"):
            m["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
        rows += [{"arch": arch, "metric": k, "value": float(v), "device": gpu, "tiny": args.tiny} for k, v in m.items()]
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    df = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(args.out / "gpu_qwen3.parquet", index=False)
    table = (
        f"# Qwen3 architectures with random weights on {gpu}{' (shrunk: --tiny)' if args.tiny else ''}\n\n"
        + df.pivot(index="metric", columns="arch", values="value")[args.arch].to_markdown(floatfmt=".3g")
        + "\n"
    )
    (args.out / "gpu_qwen3.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

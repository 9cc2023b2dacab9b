"""Agents with random weights: a published architecture (conf/arch/<arch>.json) built on its device with randomly
initialised weights, for measuring speed, memory and placement with no download. Their text is nonsense; how fast
they write it and how much memory they take do not depend on the weights' values.

A transformers agent names one with `model: random:<arch>` (pool=qwen3_random), or `random:<arch>:tiny` for the
same architecture shrunk to 2 layers of width 64 (its vocabulary kept), which runs on a CPU in seconds. Its
tokenizer is Qwen2.5's byte-level BPE, which Qwen3 shares (151,936 ids; Qwen3 only adds its thinking tokens):
taken once from the cpu pool's verified Qwen2.5 GGUF file into the cache (`tokenizer_dir`), so prompts are as
long in tokens as the real models' would be.
"""

from __future__ import annotations

import json
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from sale import CONF_DIR
from sale.llm.base import LLMError

PREFIX = "random:"
TOKENIZER = "tokenizer-qwen2.5"  # a folder in the model cache
TOKENIZER_SOURCE = "qwen2.5-coder-0.5b-instruct-q4_k_m"  # the GGUF asset (conf/assets.yaml) it is taken from
SHRUNK = dict(  # :tiny keeps the architecture's kind and vocabulary, not its size
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
)


def is_random(model) -> bool:
    return str(model).startswith(PREFIX)


def parse(model: str) -> tuple[str, bool]:
    """'random:qwen3-8b' -> ('qwen3-8b', False); 'random:qwen3-8b:tiny' -> ('qwen3-8b', True)."""
    arch, _, size = str(model)[len(PREFIX) :].partition(":")
    if size not in ("", "tiny") or not (CONF_DIR / "arch" / f"{arch}.json").exists():
        known = sorted(p.stem for p in (CONF_DIR / "arch").glob("*.json"))
        raise LLMError(f"{model!r}: write random:<arch> or random:<arch>:tiny with an arch of conf/arch ({known})")
    return arch, size == "tiny"


def config(model: str):
    """The transformers config of random:<arch>[:tiny]."""
    from transformers import AutoConfig

    arch, tiny = parse(model)
    data = json.loads((CONF_DIR / "arch" / f"{arch}.json").read_text())
    if tiny:
        data.update(SHRUNK)
    return AutoConfig.for_model(data.pop("model_type"), **data)


def tokenizer_dir(pool: str | None = None) -> Path:
    """The tokenizer folder random-weight agents use, taken from the verified GGUF file on first use (10 s)."""
    from sale.llm.assets import AssetError, models_dir, verified_asset

    out = models_dir() / TOKENIZER
    if (out / "tokenizer.json").exists():
        return out
    try:
        gguf = verified_asset(TOKENIZER_SOURCE, pool)
    except AssetError as e:
        raise AssetError(
            f"random-weight agents need the tokenizer folder {out}, taken from the cpu pool's {TOKENIZER_SOURCE} "
            f"file, which is missing here.\n  fix: python -m sale.assets fetch pool=cpu, or copy a {TOKENIZER} "
            f"folder there (make gpu-wheels puts one in .gpu-wheels/)\n  ({e})"
        ) from None
    from transformers import AutoTokenizer

    print(f"[assets] taking the tokenizer of {gguf.name} into {out} (once) ...", file=sys.stderr)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out


@lru_cache(maxsize=1)
def _tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def load_tokenizer():
    """The tokenizer random-weight agents share (read once per process)."""
    return _tokenizer(str(tokenizer_dir()))


def load(model: str, dtype: str, device: str, attn_implementation: str | None = None):
    """(tokenizer, model): random:<arch>[:tiny] built on `device` in `dtype`, seeded, in eval mode. The tokenizer
    is read once per process and shared (agents only read it), so a load into a swap area is the weights alone."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = config(model)
    tokenizer = load_tokenizer()
    if len(tokenizer) > cfg.vocab_size:
        raise LLMError(f"{model}: the tokenizer has {len(tokenizer)} ids, the architecture {cfg.vocab_size}")
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    torch.manual_seed(0)
    with torch.device(device):
        net = AutoModelForCausalLM.from_config(cfg, dtype=getattr(torch, dtype), **extra)
    return tokenizer, net.eval()

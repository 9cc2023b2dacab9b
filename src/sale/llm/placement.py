"""Where each agent's weights live: resident on a GPU, split over several, or loaded on demand.

    python -m sale.assets plan pool=qwen3 gpus=1x80GB      # dry run: memory per agent and where it goes

An agent's memory is its weights (parameters, counted exactly from its architecture config on the meta device,
times the bytes of its dtype), a KV cache reserve for `context` tokens per slot, and 5% for activations. Each GPU
keeps 1.5 GB back for the CUDA context and the allocator. The plan:
1. an agent larger than every single GPU is split over several (device_map with max_memory), and stays resident;
2. of the rest, it keeps resident the set that leaves the least to load per auction, provided some GPU keeps a
   swap area big enough for the largest agent not kept;
3. the others are loaded on demand into that swap area, one at a time; each load evicts the agent there before it.
Every agent takes part in every auction (bid and jury), so an agent on demand is loaded about twice per task: the
plan prints that traffic and its time at `load_gbps`. A pool that cannot be placed at all is refused, with what
would fit.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sale import CONF_DIR
from sale.llm.base import LLMError

BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
CUDA_RESERVE_GB = 1.5
ACTIVATION_SHARE = 0.05
LOADS_PER_TASK = 2  # an agent on demand is loaded for the bids and again for the jury


class PlacementError(LLMError):
    pass


@dataclass
class Footprint:
    agent: str
    params_b: float
    weights_gb: float
    kv_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb * (1 + ACTIVATION_SHARE) + self.kv_gb


@dataclass
class Placement:
    devices: list[tuple[str, float]]  # (name, GB)
    where: dict[str, list[int]] = field(default_factory=dict)  # agent -> device indices
    on_demand: list[str] = field(default_factory=list)
    swap_device: int | None = None
    footprints: dict[str, Footprint] = field(default_factory=dict)

    def swap_gb_per_task(self) -> float:
        return (
            LOADS_PER_TASK * sum(self.footprints[a].weights_gb for a in self.on_demand)
            if len(self.on_demand) > 1
            else 0.0
        )

    def agent_options(self, agent: str) -> dict:
        """Backend options that put the agent where the plan says."""
        idx = self.where[agent]
        if len(idx) == 1:
            return {"device": self.devices[idx[0]][0]}
        fp = self.footprints[agent]
        share = fp.total_gb / len(idx)
        return {
            "device_map": "auto",
            "max_memory": {int(self.devices[i][0].split(":")[1]): f"{share + 1:.0f}GiB" for i in idx},
        }

    def table(self, load_gbps: float = 2.0) -> str:
        rows = ["| agent | params (B) | weights GB | KV GB | total GB | placement |", "|---|---:|---:|---:|---:|---|"]
        for a, fp in self.footprints.items():
            idx = self.where[a]
            names = "+".join(self.devices[i][0] for i in idx)
            how = (
                "on demand (swap area)" if a in self.on_demand else ("split, resident" if len(idx) > 1 else "resident")
            )
            rows.append(
                f"| {a} | {fp.params_b:.2f} | {fp.weights_gb:.1f} | {fp.kv_gb:.1f} | {fp.total_gb:.1f} | "
                f"{names}: {how} |"
            )
        gb = self.swap_gb_per_task()
        if gb:
            rows.append(
                f"\n{len(self.on_demand)} agents take turns in the swap area: about {gb:.0f} GB loaded per "
                f"task, {gb / load_gbps:.0f} s at {load_gbps:g} GB/s."
            )
        else:
            rows.append("\nEvery agent stays resident: nothing is loaded during the run.")
        return "\n".join(rows)


def parse_gpus(spec: str) -> list[tuple[str, float]]:
    """'1x80GB', '4x80GB', '80GB,40GB' -> [(cuda:0, 80.0), ...]; 'cpu:6GB' for a memory budget on the CPU."""
    spec = str(spec).replace(" ", "")
    if spec.startswith("cpu:"):
        return [("cpu", _gb(spec[4:]))]
    sizes: list[float] = []
    for part in spec.split(","):
        m = re.fullmatch(r"(?:(\d+)x)?([\d.]+)(GB|GiB|G)?", part, re.IGNORECASE)
        if not m:
            raise PlacementError(
                f"gpus={spec!r}: write it as NxSIZE, e.g. gpus=1x80GB or gpus=4x80GB or gpus=80GB,40GB"
            )
        sizes += [float(m.group(2))] * int(m.group(1) or 1)
    return [(f"cuda:{i}", s) for i, s in enumerate(sizes)]


def _gb(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(GB|GiB|G)?", text, re.IGNORECASE)
    if not m:
        raise PlacementError(f"cannot read a memory size from {text!r} (e.g. 6GB)")
    return float(m.group(1))


def arch_config(spec_options: dict):
    """The agent's architecture config: conf/arch/<arch>.json, a local checkpoint's config.json, or the hub's."""
    from transformers import AutoConfig

    arch = spec_options.get("arch")
    if arch:
        path = CONF_DIR / "arch" / f"{arch}.json"
        if not path.exists():
            raise PlacementError(f"no architecture file {path}")
        data = json.loads(path.read_text())
        return AutoConfig.for_model(data.pop("model_type"), **data)
    model = spec_options.get("model")
    if model and (Path(str(model)) / "config.json").exists():
        return AutoConfig.from_pretrained(str(model))
    if model:
        return AutoConfig.from_pretrained(str(model))  # the hub, or its local cache
    raise PlacementError("the agent names neither arch: nor model:, so its size is unknown")


def count_params(config) -> int:
    """Exact parameter count, from the architecture instantiated on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def footprint(agent: str, options: dict, params_b: float, context: int, slots: int = 1) -> Footprint:
    dtype_bytes = BYTES.get(str(options.get("dtype", "auto")), 2)
    try:
        config = arch_config(options)
        params = count_params(config)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        kv_per_token = 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * dtype_bytes
    except (PlacementError, OSError, ValueError):
        params = int(params_b * 1e9)  # no config at hand: the pool's params_b, and no KV estimate
        kv_per_token = 0
    return Footprint(agent, params / 1e9, params * dtype_bytes / 1e9, kv_per_token * context * slots / 1e9)


def pool_footprints(pool_cfg: dict, context: int = 8192, slots: int = 1) -> dict[str, Footprint]:
    out = {}
    for agent, spec in pool_cfg["agents"].items():
        if spec.get("backend") != "transformers":
            raise PlacementError(
                f"agent {agent!r} runs on {spec.get('backend')!r}: only transformers agents are "
                "placed on GPUs by this runner (a server places its own model)"
            )
        out[agent] = footprint(agent, spec, float(spec.get("params_b", 0)), context, slots)
    return out


def _pack(sizes: dict[str, float], free: list[float]) -> dict[str, int] | None:
    """Largest first, each onto the emptiest device: agent -> device index, or None if they do not all fit.
    Mutates free."""
    where = {}
    for a in sorted(sizes, key=lambda a: -sizes[a]):
        i = max(range(len(free)), key=lambda i: free[i])  # the emptiest device: spreads agents over GPUs
        if free[i] < sizes[a]:
            return None
        free[i] -= sizes[a]
        where[a] = i
    return where


def plan(footprints: dict[str, Footprint], devices: list[tuple[str, float]]) -> Placement:
    usable = [gb - (CUDA_RESERVE_GB if name.startswith("cuda") else 0) for name, gb in devices]
    result = Placement(devices, footprints=footprints)
    total = {a: fp.total_gb for a, fp in footprints.items()}
    free = list(usable)
    for a in sorted(total, key=lambda a: -total[a]):  # 1. split what fits no single device
        if total[a] <= max(usable):
            continue
        order = sorted(range(len(free)), key=lambda i: -free[i])
        need, used = total[a], []
        for i in order:
            if need <= 0:
                break
            take = min(free[i], need)
            if take > 0:
                used.append(i)
                free[i] -= take
                need -= take
        if need > 1e-9 or len(used) < 2:
            raise PlacementError(_refusal(a, total[a], devices, sum(usable)))
        result.where[a] = sorted(used)
    rest = [a for a in total if a not in result.where]
    best = None  # (GB loaded per task, -resident count, resident set, packing, swap device)
    for k in range(len(rest), -1, -1):
        for resident in itertools.combinations(rest, k):
            trial = list(free)
            packing = _pack({a: total[a] for a in resident}, trial)
            if packing is None:
                continue
            swapped = [a for a in rest if a not in resident]
            swap_dev = None
            if swapped:
                need = max(total[a] for a in swapped)
                swap_dev = max(range(len(trial)), key=lambda i: trial[i])
                if trial[swap_dev] < need:
                    continue
            load = LOADS_PER_TASK * sum(footprints[a].weights_gb for a in swapped) if len(swapped) > 1 else 0.0
            key = (load, -k)
            if best is None or key < best[0]:
                best = (key, resident, packing, swap_dev, swapped)
    if best is None:
        big = max(rest, key=lambda a: total[a])
        raise PlacementError(_refusal(big, total[big], devices, max(free)))
    _, resident, packing, swap_dev, swapped = best
    assert swap_dev is not None or not swapped
    for a, i in packing.items():
        result.where[a] = [i]
    if len(swapped) == 1:  # alone in its area: it never leaves, so it is resident there
        result.where[swapped[0]] = [cast(int, swap_dev)]
    elif swapped:
        result.on_demand = swapped
        result.swap_device = swap_dev
        for a in swapped:
            result.where[a] = [cast(int, swap_dev)]
    result.where = {a: result.where[a] for a in footprints}  # the pool's order
    return result


def _refusal(agent: str, need: float, devices, room: float) -> str:
    have = ", ".join(f"{n} {gb:g} GB" for n, gb in devices)
    return (
        f"cannot place {agent!r}: it needs {need:.1f} GB (weights, KV reserve and activations) and at most "
        f"{room:.1f} GB is free for it on {have} (after {CUDA_RESERVE_GB} GB per GPU for CUDA).\n"
        f"  fix: more or larger GPUs (gpus=2x80GB), a shorter context (context=4096), or a smaller pool"
    )


class SwapArea:
    """The memory on one device that agents loaded on demand take turns in: one at a time, each load evicting the
    agent before it. Calls to agents of one area are serialised (they could not be resident together anyway)."""

    def __init__(self, device: str):
        import threading

        self.device = device
        self.lock = threading.RLock()
        self.current: "OnDemandLLM | None" = None
        self.loads = 0
        self.load_s = 0.0


class OnDemandLLM:
    """An LLM loaded into its SwapArea at its first call after another agent used the area (sale.llm.Pool)."""

    groups_ratings = True  # only transformers agents are placed, and they rate a juror's plans in one pass

    def __init__(self, name: str, loader, area: SwapArea):
        self.name, self._loader, self.area = name, loader, area
        self.llm = None

    def _call(self, method: str, *args, **kwargs):
        import time

        with self.area.lock:
            if self.area.current is not self:
                if self.area.current is not None:
                    self.area.current.unload()
                t0 = time.perf_counter()
                self.llm = self._loader()
                self.area.load_s += time.perf_counter() - t0
                self.area.loads += 1
                self.area.current = self
            return getattr(self.llm, method)(*args, **kwargs)

    def unload(self) -> None:
        if self.llm is not None and hasattr(self.llm, "close"):
            self.llm.close()
        self.llm = None
        import gc

        gc.collect()

    def generate(self, *args, **kwargs):
        return self._call("generate", *args, **kwargs)

    def score_options(self, *args, **kwargs):
        return self._call("score_options", *args, **kwargs)

    def score_options_batch(self, *args, **kwargs):
        return self._call("score_options_batch", *args, **kwargs)

    def close(self) -> None:
        with self.area.lock:
            if self.area.current is self:
                self.area.current = None
            self.unload()

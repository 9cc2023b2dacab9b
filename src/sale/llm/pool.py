"""The agent pool: each agent's spec (backend, size, price), its model loaded on first use behind a gate, and the
key the call cache files its calls under."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sale.llm.base import LLM, LLMError

if TYPE_CHECKING:
    from sale.llm.gate import CpuRoom
    from sale.llm.placement import SwapArea

BACKENDS = ("xllamacpp", "llamacpp", "transformers", "openai")
ENGINE_PACKAGES = {"xllamacpp": "xllamacpp", "llamacpp": "llama-cpp-python", "transformers": "transformers"}
# Pool options that change how fast a call runs, never what it returns: left out of the call-cache key.
# n_parallel (a server's slots) is one of them: each slot keeps its own n_ctx, so a prompt sees the same context.
# KV reuse, placement and attention kernels likewise (transformers: greedy output is tested equal with and without).
EXECUTION_ONLY_OPTIONS = {
    "n_threads",
    "timeout_s",
    "api_key_env",
    "n_parallel",
    "id_slots",
    "retries",
    "base_url",
    "kv_reuse",
    "kv_cache_entries",
    "device_map",
    "max_memory",
    "device",
    "arch",
}


def engine_id(backend: str) -> str:
    """The backend and the installed version of the engine behind it, e.g. xllamacpp==2026.10.11549."""
    package = ENGINE_PACKAGES.get(backend)
    if package is None:
        return backend
    try:
        return f"{backend}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return backend


@dataclass
class AgentSpec:
    name: str
    backend: str
    params_b: float
    price: float  # $ per million tokens, prompt and completion alike
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific keys of the pool config


def _plain(node) -> dict:
    try:
        from omegaconf import OmegaConf

        if OmegaConf.is_config(node):
            return cast(dict, OmegaConf.to_container(node, resolve=True))
    except ImportError:
        pass
    return dict(node)


class Pool:
    """The agents, cheapest first. `concurrency` is the most calls in flight per agent (run.concurrency): every
    model is loaded behind a sale.llm.gate.AgentGate of that size (1 for an engine that is not thread-safe), and a
    server-backed agent gets as many parallel slots, unless its pool file sets n_parallel."""

    def __init__(self, name: str, agents: list[AgentSpec], concurrency: int = 1, placement=None):
        if not agents:
            raise LLMError(f"pool {name!r} has no agents")
        self.name = name
        self.agents = sorted(agents, key=lambda a: (a.price, a.params_b))
        self.concurrency = max(1, int(concurrency))
        self._loaded: dict[str, LLM] = {}
        self._loading = threading.Lock()  # one model loads at a time: transformers' loading is not thread-safe
        self._cpu_room: CpuRoom | None = (
            None  # created on first use: the models on this CPU take turns (sale.llm.gate.CpuRoom)
        )
        self.server_log_dir: Path | None = (
            None  # where servers this pool starts write their logs (the runner: <run dir>/servers)
        )
        self.placement = (
            placement  # sale.llm.placement.Placement: which device each agent goes to, which load on demand
        )
        self._swap_area: SwapArea | None = None

    @classmethod
    def from_config(cls, cfg, concurrency: int = 1, gpus: str | None = None) -> "Pool":
        """gpus (run.gpus, e.g. 1x80GB): place the pool's transformers agents with sale.llm.placement, refusing a pool
        that cannot fit before any model loads."""
        cfg = _plain(cfg)
        placement = None
        if gpus:
            from sale.llm.placement import parse_gpus, plan, pool_footprints

            placement = plan(pool_footprints(cfg), parse_gpus(gpus))
        per_b = float(cfg.get("price_per_b_params", 0.0112))
        agents = []
        for name, spec in (cfg.get("agents") or {}).items():
            spec = dict(spec)
            backend = spec.pop("backend", None)
            if backend not in BACKENDS:
                raise LLMError(f"agent {name!r}: backend must be one of {BACKENDS}, got {backend!r}")
            if "params_b" not in spec:
                raise LLMError(f"agent {name!r}: params_b (parameters in billions) is required for pricing")
            params_b = float(spec.pop("params_b"))
            price = spec.pop("price", None)
            agents.append(
                AgentSpec(name, backend, params_b, float(price) if price is not None else per_b * params_b, spec)
            )
        return cls(cfg.get("name", "pool"), agents, concurrency, placement)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.agents]

    @property
    def largest(self) -> AgentSpec:
        return self.agents[-1]

    def spec(self, name: str) -> AgentSpec:
        for a in self.agents:
            if a.name == name:
                return a
        raise LLMError(f"no agent {name!r} in pool {self.name!r}; agents: {self.names}")

    def llm(self, name: str) -> LLM:
        """The agent's model, loaded (or its server started) on first use, then kept. Thread-safe."""
        if name not in self._loaded:
            from sale.llm.gate import AgentGate, CpuRoom, agent_limit, computes_on_this_cpu

            spec = self.spec(name)
            with self._loading:
                if name not in self._loaded:
                    limit = agent_limit(spec.backend, self.concurrency)
                    if self.placement is not None:
                        spec = AgentSpec(
                            spec.name,
                            spec.backend,
                            spec.params_b,
                            spec.price,
                            {**spec.options, **self.placement.agent_options(name)},
                        )
                    if self.placement is not None and name in self.placement.on_demand:
                        from sale.llm.placement import OnDemandLLM, SwapArea

                        self._swap_area = self._swap_area or SwapArea(
                            self.placement.devices[self.placement.swap_device][0]
                        )
                        llm: LLM = OnDemandLLM(
                            name, lambda s=spec: load_backend(s, pool_name=self.name, slots=limit), self._swap_area
                        )
                    else:
                        llm = load_backend(spec, pool_name=self.name, slots=limit, server_log_dir=self.server_log_dir)
                    room = None
                    if self.concurrency > 1 and computes_on_this_cpu(spec.backend, spec.options):
                        self._cpu_room = self._cpu_room or CpuRoom()
                        room = self._cpu_room
                    self._loaded[name] = AgentGate(llm, limit, room)
        return self._loaded[name]

    def close(self) -> None:
        """Free every loaded model and stop every server this pool started."""
        for name in list(self._loaded):
            llm = self._loaded.pop(name)
            close = getattr(llm, "close", None)
            if close is not None:
                close()

    def model_key(self, name: str) -> str:
        """What the call cache keys a call's model on: the engine and its version, the weights (the file's sha256
        where there is one), and every backend option that can change what the model writes. Two engines never
        answer for each other, even on the same file."""
        spec = self.spec(name)
        opts = {k: v for k, v in spec.options.items() if k not in EXECUTION_ONLY_OPTIONS}
        engine = engine_id(spec.backend)
        if "serve" in opts:  # a server this pool starts: keyed on the weights and the engine behind the HTTP API
            serve = {k: v for k, v in dict(opts.pop("serve")).items() if k not in EXECUTION_ONLY_OPTIONS}
            engine += "+" + engine_id(serve.pop("engine", "xllamacpp"))  # +stub for the stub server
            opts.pop("model", None)  # only a label for the server
            opts.update(serve)
        asset = opts.pop("asset", None)
        if asset and not asset.startswith("tiny:"):
            from sale.llm.assets import catalogue

            weights = "sha256:" + catalogue()[asset]["sha256"]
        else:
            weights = str(asset or opts.pop("model", None) or opts.pop("model_path", ""))
        if spec.backend == "transformers":  # what "auto" resolves to here, and the template's arguments
            from sale.llm.transformers_backend import resolved_identity

            opts["resolved"] = resolved_identity(spec.options)
        extra = json.dumps(opts, sort_keys=True, default=str) if opts else ""
        return f"{engine}|{weights}|{extra}"


def load_backend(spec: AgentSpec, pool_name: str | None = None, slots: int = 1, server_log_dir=None) -> LLM:
    """The agent's model. `slots`: calls that may be in flight to it, the parallel slots of a llama.cpp server it
    starts (unless the pool file sets n_parallel)."""
    opts = dict(spec.options)
    if spec.backend in ("xllamacpp", "llamacpp"):
        from sale.llm.assets import verified_asset

        path = verified_asset(opts.pop("asset"), pool_name) if "asset" in opts else opts.pop("model_path")
        if spec.backend == "xllamacpp":
            from sale.llm.xllamacpp_backend import XLlamaCppLLM

            opts.setdefault("n_parallel", slots)
            return XLlamaCppLLM(spec.name, path, **opts)
        if importlib.util.find_spec("llama_cpp") is None:
            raise LLMError(
                f"agent {spec.name!r} uses backend llamacpp, but llama-cpp-python is not installed (an "
                "optional extra that compiles llama.cpp): run `make llamacpp`, or use pool=cpu (xllamacpp)"
            )
        from sale.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(spec.name, path, **opts)
    if spec.backend == "transformers":
        from sale.llm.transformers_backend import TransformersLLM

        opts.pop("arch", None)  # the architecture's config, for placement: the weights carry their own
        if "asset" in opts:
            from sale.llm.assets import hf_checkpoint, verified_asset

            asset = opts.pop("asset")
            # a GGUF file runs from its converted checkpoint; a tiny test model is a checkpoint already
            opts["model"] = (
                verified_asset(asset, pool_name) if asset.startswith("tiny:") else hf_checkpoint(asset, pool_name)
            )
        return TransformersLLM(spec.name, **opts)
    from sale.llm.openai_compat import OpenAICompatLLM

    serve = opts.pop("serve", None)
    if serve is None:
        return OpenAICompatLLM(spec.name, **opts)
    from sale.llm.assets import verified_asset
    from sale.llm.local_server import LocalServer

    serve = dict(serve)
    path = verified_asset(serve.pop("asset"), pool_name) if "asset" in serve else serve.pop("model_path", None)
    n_parallel = int(serve.pop("n_parallel", slots))
    server = LocalServer(spec.name, path, n_parallel=n_parallel, log_dir=server_log_dir, **serve).start()
    opts.setdefault("model", spec.name)
    if serve.get("engine", "xllamacpp") == "xllamacpp":  # llama.cpp's server: every call names its slot
        opts.setdefault("id_slots", n_parallel)
    try:
        return OpenAICompatLLM(spec.name, base_url=server.base_url, server=server, **opts)
    except Exception:
        server.stop()
        raise


def load_pool(name: str, concurrency: int = 1, gpus: str | None = None) -> Pool:
    """The pool of conf/pool/<name>.yaml (sale.config.pool_config checks the name)."""
    from sale.config import pool_config

    return Pool.from_config(pool_config(name), concurrency=concurrency, gpus=gpus)

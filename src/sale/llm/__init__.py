"""One LLM interface (sale.llm.base.LLM), three backends, and the agent pool that names them.

    pool = Pool.from_config(cfg.pool)          # agents ordered by price, cheapest first
    llm = pool.llm("qwen2.5-coder-1.5b")       # loaded on first use, then kept
    gen = llm.generate([{"role": "user", "content": "hi"}], max_tokens=32)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass, field
from typing import Any

from sale.llm.base import LLM, Generation, LLMError, OptionScores  # noqa: F401

BACKENDS = ("xllamacpp", "llamacpp", "transformers", "openai")
ENGINE_PACKAGES = {"xllamacpp": "xllamacpp", "llamacpp": "llama-cpp-python", "transformers": "transformers"}
# Pool options that change how fast a call runs, never what it returns: left out of the call-cache key.
EXECUTION_ONLY_OPTIONS = {"n_threads", "timeout_s", "api_key_env"}


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
            return OmegaConf.to_container(node, resolve=True)
    except ImportError:
        pass
    return dict(node)


class Pool:
    def __init__(self, name: str, agents: list[AgentSpec]):
        if not agents:
            raise LLMError(f"pool {name!r} has no agents")
        self.name = name
        self.agents = sorted(agents, key=lambda a: (a.price, a.params_b))
        self._loaded: dict[str, LLM] = {}

    @classmethod
    def from_config(cls, cfg) -> "Pool":
        cfg = _plain(cfg)
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
            agents.append(AgentSpec(name, backend, params_b, float(price) if price is not None else per_b * params_b,
                                    spec))
        return cls(cfg.get("name", "pool"), agents)

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
        if name not in self._loaded:
            self._loaded[name] = load_backend(self.spec(name), pool_name=self.name)
        return self._loaded[name]

    def model_key(self, name: str) -> str:
        """What the call cache keys a call's model on: the engine and its version, the weights (the file's sha256
        where there is one), and every backend option that can change what the model writes. Two engines never
        answer for each other, even on the same file."""
        spec = self.spec(name)
        opts = {k: v for k, v in spec.options.items() if k not in EXECUTION_ONLY_OPTIONS}
        asset = opts.pop("asset", None)
        if asset and not asset.startswith("tiny:"):
            from sale.assets import catalogue

            weights = "sha256:" + catalogue()[asset]["sha256"]
        else:
            weights = str(asset or opts.pop("model", None) or opts.pop("model_path", ""))
        extra = json.dumps(opts, sort_keys=True, default=str) if opts else ""
        return f"{engine_id(spec.backend)}|{weights}|{extra}"


def load_backend(spec: AgentSpec, pool_name: str | None = None) -> LLM:
    opts = dict(spec.options)
    if spec.backend in ("xllamacpp", "llamacpp"):
        from sale.assets import verified_asset

        path = verified_asset(opts.pop("asset"), pool_name) if "asset" in opts else opts.pop("model_path")
        if spec.backend == "xllamacpp":
            from sale.llm.xllamacpp_backend import XLlamaCppLLM

            return XLlamaCppLLM(spec.name, path, **opts)
        if importlib.util.find_spec("llama_cpp") is None:
            raise LLMError(f"agent {spec.name!r} uses backend llamacpp, but llama-cpp-python is not installed (an "
                           "optional extra that compiles llama.cpp): run `make llamacpp`, or use pool=cpu (xllamacpp)")
        from sale.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(spec.name, path, **opts)
    if spec.backend == "transformers":
        from sale.llm.transformers_backend import TransformersLLM

        if "asset" in opts:
            from sale.assets import verified_asset

            asset = opts.pop("asset")
            path = verified_asset(asset, pool_name)
            if path.is_file():  # a GGUF file: transformers dequantises it
                opts.setdefault("gguf_file", path.name)
                path = path.parent
            opts["model"] = path
        return TransformersLLM(spec.name, **opts)
    from sale.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM(spec.name, **opts)

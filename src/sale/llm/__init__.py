"""Model hosting: one LLM interface (base.LLM), its backends, the agent pool that names them, the call cache, the
model files (assets), GPU placement, and the checks that an engine runs on this machine.

    pool = load_pool("cpu")                    # agents ordered by price, cheapest first
    llm = pool.llm("qwen2.5-coder-1.5b")       # loaded on first use, then kept
    gen = llm.generate([{"role": "user", "content": "hi"}], max_tokens=32)
"""

from sale.llm.base import LLM, Generation, LLMError, OptionScores
from sale.llm.pool import BACKENDS, AgentSpec, Pool, engine_id, load_backend, load_pool

__all__ = [
    "BACKENDS",
    "LLM",
    "AgentSpec",
    "Generation",
    "LLMError",
    "OptionScores",
    "Pool",
    "engine_id",
    "load_backend",
    "load_pool",
]

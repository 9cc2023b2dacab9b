import os
import socket

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SALE_CACHE_SHARDS", "")  # tests compute their calls; test_llm.py tests the shards


@pytest.fixture(scope="session")
def tiny_pool():
    """The `tiny` pool (random 2-layer models, transformers backend), built into the cache on first use."""
    from sale.llm import load_pool
    from sale.llm.assets import fetch_asset, pool_assets

    for _, asset in pool_assets("tiny"):
        fetch_asset(asset)
    return load_pool("tiny")


@pytest.fixture(scope="session")
def cpu_pool():
    """The real `cpu` pool (llama.cpp); its files must have been fetched (make setup does it)."""
    from sale.llm import load_pool

    return load_pool("cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

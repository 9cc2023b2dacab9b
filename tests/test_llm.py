"""The LLM interface on all three backends: text, token counts, entropies, score_options, clear errors."""

import multiprocessing
import time

import httpx
import numpy as np
import pytest
from conftest import free_port
from scipy.special import softmax
from scipy.stats import entropy as scipy_entropy

from sale.llm import LLMError, Pool, load_pool
from sale.llm.assets import AssetError, asset_path, pool_assets, verified_asset
from sale.llm.base import entropy_from_logits, entropy_from_top_logprobs, option_probs_from_logits
from sale.llm.cache import CachedLLM, CallCache
from sale.llm.openai_compat import OpenAICompatLLM

MSGS = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
DIGITS = ["0", "1", "2", "3", "4", "5"]


# ------------------------------------------------------------------------------------------- numerics


def test_entropy_matches_scipy():
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 30.0):
        logits = rng.normal(size=5000) * scale
        assert entropy_from_logits(logits) == pytest.approx(scipy_entropy(softmax(logits)), rel=1e-9, abs=1e-9)
    assert entropy_from_logits(np.zeros(8)) == pytest.approx(np.log(8))
    assert entropy_from_logits(np.array([0.0, -np.inf, -np.inf])) == pytest.approx(0.0)


def test_top_logprob_entropy_renormalises():
    lp = np.log([0.5, 0.25, 0.05])  # mass 0.8, renormalised to 0.625, 0.3125, 0.0625
    assert entropy_from_top_logprobs(lp) == pytest.approx(scipy_entropy([0.625, 0.3125, 0.0625]))


def test_tail_bound_entropy_is_a_lower_bound_exact_without_a_tail():
    rng = np.random.default_rng(1)
    for scale in (0.5, 2.0, 6.0):
        logits = rng.normal(size=3000) * scale
        lp = np.sort(logits - np.log(np.exp(logits).sum()))[::-1]  # full-softmax log-probabilities, descending
        truth = scipy_entropy(np.exp(lp))
        previous = 0.0
        for k in (5, 50, 500, 3000):
            estimate = entropy_from_top_logprobs(lp[:k], "tail_bound")
            assert previous - 1e-9 <= estimate <= truth + 1e-9  # rises towards the truth as k grows
            previous = estimate
        assert previous == pytest.approx(truth, abs=1e-9)
    with pytest.raises(ValueError, match="unknown entropy estimator"):
        entropy_from_top_logprobs([-1.0], "guess")


def test_option_probs_renormalise_over_options():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    probs, mass = option_probs_from_logits(logits, [1, 3])
    assert mass == pytest.approx(0.6)
    assert probs == pytest.approx([1 / 3, 2 / 3])


# ------------------------------------------------------------------------------ transformers (tiny)


def test_transformers_generate_entropies_match_direct_forward(tiny_pool):
    import torch

    llm = tiny_pool.llm("tiny-qwen3-a")
    gen = llm.generate(MSGS, max_tokens=12, entropy=True)
    assert gen.prompt_tokens > 5 and 0 < gen.completion_tokens <= 12
    assert len(gen.entropies) == gen.completion_tokens and not gen.entropy_approximate
    # Recompute each step's entropy from one forward pass over prompt + completion.
    ids = torch.tensor([llm.prompt_ids(MSGS)])
    out = llm.model.generate(
        ids, max_new_tokens=12, do_sample=False, top_p=None, top_k=None, pad_token_id=llm.tokenizer.pad_token_id
    )
    full = out[:, : ids.shape[1] + gen.completion_tokens]
    with torch.no_grad():
        logits = llm.model(full).logits[0]
    direct = [
        scipy_entropy(softmax(logits[ids.shape[1] - 1 + k].double().numpy())) for k in range(gen.completion_tokens)
    ]
    assert gen.entropies == pytest.approx(direct, rel=1e-4, abs=1e-5)


def test_transformers_score_options_is_one_forward_pass(tiny_pool):
    import torch

    llm = tiny_pool.llm("tiny-qwen2-c")
    scores = llm.score_options(MSGS, DIGITS)
    assert sum(scores.probs) == pytest.approx(1.0) and len(scores.probs) == 6
    ids = torch.tensor([llm.prompt_ids(MSGS)])
    with torch.no_grad():
        last = llm.model(ids).logits[0, -1].double().numpy()
    option_ids = [llm.tokenizer.encode(d, add_special_tokens=False)[0] for d in DIGITS]
    assert scores.probs == pytest.approx(list(softmax(last[option_ids])), rel=1e-5)
    assert 0 <= scores.expected_value() <= 5


def test_call_cache_serves_identical_calls(tiny_pool, tmp_path):
    cache = CallCache(tmp_path / "calls.sqlite")
    llm = CachedLLM(tiny_pool.llm("tiny-qwen3-b"), "tiny-qwen3-b", cache)
    first = llm.generate(MSGS, max_tokens=8, entropy=True)
    second = llm.generate(MSGS, max_tokens=8, entropy=True)
    assert (cache.misses, cache.hits) == (1, 1) and second.cached and not first.cached
    assert second.text == first.text and second.entropies == first.entropies
    llm.generate(MSGS, max_tokens=9)  # another decoding parameter is another call
    assert cache.misses == 2
    reopened = CachedLLM(tiny_pool.llm("tiny-qwen3-b"), "tiny-qwen3-b", CallCache(tmp_path / "calls.sqlite"))
    assert reopened.score_options(MSGS, DIGITS).probs == pytest.approx(llm.score_options(MSGS, DIGITS).probs)


def test_the_entropy_is_computed_only_for_calls_that_read_it(tiny_pool, tmp_path):
    """A bid asks for its entropy; an execution does not, and logs none. The cache key leaves the flag out (the
    committed calls keep answering): a cached call with the entropy answers one without it, stripped as that call
    would have logged it, and a cached call without it does not answer one that needs it."""
    from sale.harness.ledger import Ledger

    cache = CallCache(tmp_path / "calls.sqlite")
    llm = CachedLLM(tiny_pool.llm("tiny-qwen3-b"), "tiny-qwen3-b", cache)
    plain = llm.generate(MSGS, max_tokens=8)
    assert plain.entropies == [] and plain.mean_entropy is None and not plain.entropy_computed
    bid = llm.generate(MSGS, max_tokens=8, entropy=True)  # the cached call had no entropy: made again
    assert not bid.cached and bid.text == plain.text and len(bid.entropies) == bid.completion_tokens > 0
    again = llm.generate(MSGS, max_tokens=8)  # now cached with the entropy: served, without it
    assert again.cached and again.mean_entropy is None and again.text == bid.text
    assert llm.generate(MSGS, max_tokens=8, entropy=True).mean_entropy == pytest.approx(bid.mean_entropy)

    ledger = Ledger(tiny_pool)
    ledger.generate("tiny-qwen3-a", "execute", MSGS, max_tokens=4)
    ledger.generate("tiny-qwen3-a", "bid", MSGS, max_tokens=4, entropy=True)
    executed, bidden = ledger.calls
    assert executed["mean_entropy"] is None and bidden["mean_entropy"] is not None


def _open_cache_after(barrier, path) -> str | None:
    barrier.wait()
    try:
        CallCache(path).put("k", {"text": "x"})
    except Exception as e:  # returned, not raised: the parent reports every process's error
        return str(e)
    return None


def test_processes_opening_one_new_cache_together_all_get_it(tmp_path):
    # Two jobs of one multirun open a fresh cache at the same moment; SQLite then says "database is locked" at once.
    with multiprocessing.Manager() as manager, multiprocessing.Pool(6) as pool:
        for round_ in range(40):
            path = tmp_path / f"calls{round_}.sqlite"
            barrier = manager.Barrier(6)
            errors = [e for e in pool.starmap(_open_cache_after, [(barrier, path)] * 6) if e]
            assert not errors, errors
            assert CallCache(path).get("k") == {"text": "x"}


def test_cache_shards_carry_a_pools_calls_to_a_fresh_cache(tiny_pool, tmp_path, capsys):
    import sqlite3

    from omegaconf import OmegaConf

    from sale.llm.cache import main as cache_main
    from sale.llm.cache import open_cache

    cache = CallCache(tmp_path / "a.sqlite")
    llm = CachedLLM(tiny_pool.llm("tiny-qwen3-b"), "tiny-qwen3-b", cache)
    made = llm.generate(MSGS, max_tokens=8, entropy=True)
    rating = llm.score_options(MSGS, DIGITS)
    CachedLLM(tiny_pool.llm("tiny-qwen3-a"), "other-model", cache).generate(MSGS, max_tokens=8)
    shard, n = cache.export_shard(tmp_path / "shards", {"tiny-qwen3-b"})
    assert n == 2 and shard.parent == tmp_path / "shards"  # the other model's call is not this pool's
    assert cache.export_shard(tmp_path / "shards", {"tiny-qwen3-b"}) == (None, 0)  # append-only: nothing new

    cfg = OmegaConf.create({"run": {"cache": str(tmp_path / "fresh.sqlite"), "cache_shards": str(tmp_path / "shards")}})
    fresh = open_cache(cfg)
    assert "imported 2 calls" in capsys.readouterr().out
    replay = CachedLLM(tiny_pool.llm("tiny-qwen3-b"), "tiny-qwen3-b", fresh)
    again = replay.generate(MSGS, max_tokens=8, entropy=True)
    assert again.cached and again.text == made.text and again.entropies == made.entropies
    assert replay.score_options(MSGS, DIGITS).probs == pytest.approx(rating.probs)
    assert fresh.misses == 0 and open_cache(cfg).import_shards(tmp_path / "shards") == 0  # each shard once

    (tmp_path / "shards" / "calls-broken.parquet").write_bytes(b"not parquet")
    assert CallCache(tmp_path / "other.sqlite").import_shards(tmp_path / "shards") == 2
    assert "skipped" in capsys.readouterr().err

    old = sqlite3.connect(tmp_path / "old.sqlite")  # a cache file from before entries recorded their model
    old.execute("CREATE TABLE calls (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    old.execute("INSERT INTO calls VALUES ('k', '{}')")
    old.commit()
    old.close()
    assert CallCache(tmp_path / "old.sqlite").export_shard(tmp_path / "s2", {"m"}) == (None, 0)
    assert CallCache(tmp_path / "old.sqlite").export_shard(tmp_path / "s2", {"m"}, include_unlabelled=True)[1] == 1

    with pytest.raises(SystemExit, match="no call cache"):
        cache_main(["export", "--pool", "tiny", "--cache", str(tmp_path / "missing.sqlite")])


def test_runs_import_the_pools_committed_shards_by_default(monkeypatch):
    from sale.config import compose

    monkeypatch.delenv("SALE_CACHE_SHARDS")
    cfg = compose(*["pool=tiny"])
    assert cfg.run.cache_shards == "data/cache/tiny"


# --------------------------------------------------------------------------------------- bad input


def test_unknown_pool_and_agent_are_clear_errors(tiny_pool):
    with pytest.raises(AssetError, match="unknown pool 'nope'.*cpu"):
        pool_assets("nope")
    with pytest.raises(LLMError, match="no agent 'gpt-9'.*tiny-qwen3-a"):
        tiny_pool.llm("gpt-9")
    with pytest.raises(LLMError, match="backend must be one of"):
        Pool.from_config({"name": "x", "agents": {"a": {"backend": "mystery", "params_b": 1}}})
    with pytest.raises(LLMError, match="params_b"):
        Pool.from_config({"name": "x", "agents": {"a": {"backend": "llamacpp"}}})


def test_an_unknown_pool_is_refused_with_the_closest_one():
    from sale.config import ConfigError, compose

    with pytest.raises(ConfigError, match="unknown pool 'nope'; known: cpu"):
        compose("pool=nope")
    with pytest.raises(ConfigError, match=r"unknown pool 'cpuu' \(did you mean cpu\?\)"):
        compose("pool=cpuu")


def test_unreachable_server_is_a_clear_error():
    llm = OpenAICompatLLM("ghost", f"http://127.0.0.1:{free_port()}/v1", "ghost-model", timeout_s=5)
    with pytest.raises(LLMError, match="cannot reach .*Is the server running"):
        llm.generate(MSGS, max_tokens=4)


def test_missing_model_file_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("SALE_CACHE_DIR", str(tmp_path))
    with pytest.raises(AssetError, match="(?s)missing.*python -m sale.assets fetch pool=cpu"):
        verified_asset("smollm2-135m-instruct-q4_1", "cpu")


@pytest.mark.models
def test_flipped_byte_is_refused_until_refetched(tmp_path, monkeypatch):
    name = "smollm2-135m-instruct-q4_1"
    good = verified_asset(name)
    monkeypatch.setenv("SALE_CACHE_DIR", str(tmp_path))
    copy = asset_path(name)
    copy.parent.mkdir(parents=True)
    copy.write_bytes(good.read_bytes())
    assert verified_asset(name) == copy  # verified once; a stamp now remembers it
    with open(copy, "r+b") as f:
        f.seek(copy.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(AssetError, match="(?s)corrupt.*fix: delete it and run python -m sale.assets fetch"):
        verified_asset(name, "cpu")
    with pytest.raises(LLMError, match="corrupt"):
        load_pool("cpu").llm("smollm2-135m")


# ----------------------------------------------------------------------------- llama.cpp via xllamacpp (real)


@pytest.mark.models
def test_xllamacpp_entropy_and_options_match_the_full_vocabulary(cpu_pool):
    """The default engine's estimates against the same engine's full distribution (all 49,152 log-probabilities of
    SmolLM2, asked for explicitly): the tail bound is a lower bound within 5%, the options exact."""
    llm = cpu_pool.llm("smollm2-135m")
    assert llm.entropy_estimator == "tail_bound"
    gen = llm.generate(MSGS, max_tokens=4, entropy=True)
    plain = llm.generate(MSGS, max_tokens=4)  # an execution: no log-probabilities asked for, none read
    assert plain.text == gen.text and plain.entropies == [] and plain.mean_entropy is None
    assert gen.entropy_approximate and gen.completion_tokens > 0 and len(gen.entropies) == gen.completion_tokens
    full = llm.chat(MSGS, max_tokens=4, temperature=0.0, seed=0, logprobs=True, top_logprobs=49152)
    steps = full["choices"][0]["logprobs"]["content"]
    assert full["choices"][0]["message"]["content"] == gen.text  # greedy: the same tokens either way
    exact = [float(-sum(np.exp(a["logprob"]) * a["logprob"] for a in st["top_logprobs"])) for st in steps]
    assert all(sum(np.exp(a["logprob"]) for a in st["top_logprobs"]) == pytest.approx(1.0, abs=1e-3) for st in steps)
    for estimate, truth in zip(gen.entropies, exact):
        assert 0.95 * truth - 0.02 <= estimate <= truth + 1e-3  # a lower bound, within 5% (the top 200 miss a tail)

    # A rating prompt, whose digits are among the top 1000, and a question whose digit "0" is not (SmolLM2 puts
    # 1% of its mass on the digits there): both are exact.
    for msgs in ([{"role": "user", "content": "Pick a digit from 0 to 5. Reply with the digit only."}], MSGS):
        scores = llm.score_options(msgs, DIGITS)
        first = llm.chat(msgs, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=49152)
        alts = {a["token"]: a["logprob"] for a in first["choices"][0]["logprobs"]["content"][0]["top_logprobs"]}
        digit_lp = np.array([alts[d] for d in DIGITS])
        assert not scores.approximate and sum(scores.probs) == pytest.approx(1.0)
        assert scores.probs == pytest.approx(list(softmax(digit_lp)), rel=1e-4, abs=1e-6)
        assert scores.option_mass == pytest.approx(float(np.exp(digit_lp).sum()), rel=1e-4)


@pytest.mark.models
def test_xllamacpp_refuses_an_oversized_prompt_clearly(cpu_pool):
    from sale.llm.xllamacpp_backend import XLlamaCppLLM

    llm = XLlamaCppLLM("small-ctx", verified_asset("smollm2-135m-instruct-q4_1"), n_ctx=256)
    with pytest.raises(LLMError, match="small-ctx: llama.cpp refused the call.*exceed"):
        llm.generate([{"role": "user", "content": "word " * 600}], max_tokens=4)
    llm.close()


@pytest.mark.models
def test_llamacpp_entropy_and_options_match_full_logits():
    """The optional full-vocabulary engine (llama-cpp-python, `make llamacpp`); skipped where it is not built."""
    pytest.importorskip("llama_cpp")
    from llama_cpp import Llama

    pool = load_pool("cpu_llamacpp")
    llm = pool.llm("smollm2-135m")
    gen = llm.generate(MSGS, max_tokens=16)
    assert gen.completion_tokens > 0 and len(gen.entropies) == gen.completion_tokens and not gen.entropy_approximate
    prompt = llm.prompt_tokens(MSGS)
    completion = llm.llm.tokenize(gen.text.encode(), add_bos=False, special=False)
    reference = Llama(model_path=str(llm.model_path), n_ctx=512, logits_all=True, verbose=False)
    reference.eval(prompt)
    for token in completion:  # one token at a time, as decoding does (batched kernels differ slightly)
        reference.eval([token])
    n = min(len(completion), gen.completion_tokens)
    direct = [scipy_entropy(softmax(reference.scores[len(prompt) - 1 + k].astype(np.float64))) for k in range(n)]
    assert gen.entropies[:n] == pytest.approx(direct, rel=2e-2, abs=2e-2)

    scores = llm.score_options(MSGS, DIGITS)
    last = reference.scores[len(prompt) - 1].astype(np.float64)
    ids = [llm.llm.tokenize(d.encode(), add_bos=False, special=False)[0] for d in DIGITS]
    assert sum(scores.probs) == pytest.approx(1.0)
    assert scores.probs == pytest.approx(list(softmax(last[ids])), rel=2e-2, abs=1e-3)


@pytest.mark.models
@pytest.mark.parametrize("agent", ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
def test_each_cpu_agent_answers_a_trivial_prompt(cpu_pool, agent):
    gen = cpu_pool.llm(agent).generate(MSGS, max_tokens=16, entropy=True)
    assert "paris" in gen.text.lower(), gen.text
    assert gen.prompt_tokens > 10 and gen.completion_tokens >= 1 and gen.mean_entropy >= 0


# -------------------------------------------------------------------------- OpenAI-compatible (real)


@pytest.fixture(scope="module")
def llama_server():
    """llama.cpp's own OpenAI-compatible HTTP server (embedded in xllamacpp) on 127.0.0.1, serving SmolLM2."""
    from sale.llm.xllamacpp_backend import XLlamaCppLLM

    llm = XLlamaCppLLM("smollm2-server", verified_asset("smollm2-135m-instruct-q4_1"), n_ctx=2048)
    deadline = time.time() + 60
    while httpx.get(f"{llm.url}/models", timeout=5).status_code != 200:
        assert time.time() < deadline, "the embedded server did not answer within 60 s"
        time.sleep(0.3)
    yield llm.url
    llm.close()


@pytest.mark.models
def test_openai_backend_against_a_real_local_server(llama_server):
    llm = OpenAICompatLLM("smollm2-http", llama_server, "smollm2", top_logprobs=10)
    plain = llm.generate(MSGS, max_tokens=16)  # an execution: asks the server for no log-probabilities
    assert plain.entropies == [] and plain.mean_entropy is None
    gen = llm.generate(MSGS, max_tokens=16, entropy=True)
    assert gen.text == plain.text
    assert "paris" in gen.text.lower()
    assert gen.prompt_tokens > 10 and gen.completion_tokens >= 1 and gen.entropy_approximate
    assert len(gen.entropies) >= 1 and all(0 <= h <= np.log(49152) for h in gen.entropies)
    scores = llm.score_options(
        [{"role": "user", "content": "Pick a digit from 0 to 5. Reply with the digit only."}], DIGITS
    )
    assert scores.approximate and sum(scores.probs) == pytest.approx(1.0) and scores.option_mass > 0


@pytest.mark.models
def test_xllamacpp_calls_go_to_the_slot_they_name_and_a_jurors_ratings_share_one():
    """llama.cpp's id_slot is honoured (a prompt sent to another slot recomputes everything; to its own slot, only
    what follows the shared prefix), and score_options_batch rates a juror's plans in sequence on one slot with the
    same ratings as one call each."""
    from sale.llm.xllamacpp_backend import XLlamaCppLLM

    llm = XLlamaCppLLM("slots", verified_asset("smollm2-135m-instruct-q4_1"), n_ctx=1024, n_parallel=2)
    task = "Rate this plan for the task: write a function that returns the n-th prime number. " * 4

    def rating(plan):
        return [{"role": "user", "content": f"{task}\nPlan: {plan}\nReply with one digit from 0 to 5."}]

    def reused(messages, slot):
        return llm.chat(messages, slot, max_tokens=1, temperature=0.0)["timings"]["cache_n"]

    assert reused(rating("loop over numbers"), 0) == 0
    assert reused(rating("use a sieve"), 1) == 0  # slot 1 holds nothing yet
    assert reused(rating("trial division"), 0) > 100  # slot 0 holds the task

    plans = ["loop over numbers", "use a sieve", "trial division"]
    grouped = llm.score_options_batch([rating(p) for p in plans], DIGITS)
    one_by_one = [llm.score_options(rating(p), DIGITS) for p in plans]
    for g, o in zip(grouped, one_by_one):
        assert g.probs == pytest.approx(o.probs, abs=1e-3)
    llm.close()

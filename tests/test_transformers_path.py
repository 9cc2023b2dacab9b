"""The transformers path: KV reuse and the batched jury change nothing they compute; thinking stays out of parsed
text; the call-cache key covers what changes a generation; placement plans the qwen3 pool or refuses it; agents
loaded on demand give the same answers. Real weights (marked models): agreement with llama.cpp on the same file."""

from __future__ import annotations

import pytest
import yaml

from sale.config import compose, pool_config
from sale.harness.transformers_check import conversation, jury_prompts
from sale.llm import Pool, load_pool
from sale.llm.base import split_thinking
from sale.llm.placement import PlacementError, parse_gpus, plan, pool_footprints

DIGITS = [str(d) for d in range(6)]


def _pool(name: str, **kw) -> Pool:
    return load_pool(name, **kw)


def _turns(llm, prompts, reuse: bool) -> list[str]:
    llm.kv_reuse = reuse
    llm.clear_cache()
    return [llm.generate(p, max_tokens=12, stop=["Observation:"]).text for p in prompts]


def test_kv_reuse_gives_identical_greedy_turns_and_is_used(tiny_pool):
    llm = tiny_pool.llm("tiny-qwen3-a").llm
    prompts = conversation(6)
    before = llm.kv_hits
    assert _turns(llm, prompts, reuse=True) == _turns(llm, prompts, reuse=False)
    assert llm.kv_hits - before > sum(len(llm.prompt_ids(p)) for p in prompts[:-1]) // 2  # most of each prompt


def test_batched_jury_equals_one_plan_at_a_time(tiny_pool):
    llm = tiny_pool.llm("tiny-qwen2-c").llm
    prompts = jury_prompts(5)
    llm.kv_reuse = False
    llm.clear_cache()
    one = [llm.score_options(m, DIGITS) for m in prompts]
    llm.kv_reuse = True
    batched = llm.score_options_batch(prompts, DIGITS)
    again = llm.score_options_batch(prompts, DIGITS)  # the shared prefix now comes from the kept cache
    for a, b, c in zip(one, batched, again):
        assert b.expected_value() == pytest.approx(a.expected_value(), abs=1e-3)
        assert c.expected_value() == pytest.approx(a.expected_value(), abs=1e-3)
        assert b.prompt_tokens == a.prompt_tokens  # each rating is charged its whole prompt


def test_jury_batches_per_juror_and_logs_one_call_per_rating(tiny_pool):
    import random

    from sale.auction.bids import Bid
    from sale.auction.jury import rate
    from sale.harness.ledger import Ledger
    from sale.tasks import Task

    task = Task("t/1", "coding", "Write a function that returns the sum of a list.")
    bids = [
        Bid(agent=a, plan=p, tokens=5, entropy=1.0)
        for a, p in zip(tiny_pool.names, ["sum it", "loop and add", "use reduce"])
    ]
    ledger = Ledger(tiny_pool)
    prompts = compose().auction.prompts
    scores = rate(ledger, tiny_pool.names, task, bids, DIGITS, random.Random(0), prompts=prompts)
    assert len(ledger.calls) == 9 and all(c["phase"] == "jury" for c in ledger.calls)
    for (juror, i), s in scores.items():  # equal to rating each plan alone
        from sale.auction.jury import jury_messages

        alone = tiny_pool.llm(juror).llm.score_options(jury_messages(task, bids[i].plan, prompts), DIGITS)
        assert s.expected_value() == pytest.approx(alone.expected_value(), abs=1e-3)


def test_thinking_block_is_split_from_the_answer():
    assert split_thinking("<think>\nlet me see\n</think>\n\nAction: open[Ann]") == ("let me see", "Action: open[Ann]")
    assert split_thinking("<think> still thinking when cut") == ("still thinking when cut", "")
    assert split_thinking("Action: answer[3]") == ("", "Action: answer[3]")


def test_stop_strings_count_only_after_the_thinking_block(tiny_pool):
    import torch

    from sale.llm.transformers_backend import _StopAfterThinking

    tok = tiny_pool.llm("tiny-qwen3-a").llm.tokenizer
    close = tok.convert_tokens_to_ids("<|endoftext|>")  # stands for </think>, which the tiny vocabulary lacks
    thinking = tok.encode("Observation: I will plan", add_special_tokens=False)
    answer = tok.encode("Action: search[x] Observation:", add_special_tokens=False)
    crit = _StopAfterThinking(tok, ["Observation:"], prompt_len=2, think_close_id=close)
    assert not crit(torch.tensor([[0, 0, *thinking]]), None)[0]  # inside the block: no stop
    assert not crit(torch.tensor([[0, 0, *thinking, close]]), None)[0]
    assert crit(torch.tensor([[0, 0, *thinking, close, *answer]]), None)[0]
    plain = _StopAfterThinking(tok, ["Observation:"], prompt_len=2, think_close_id=None)
    assert plain(torch.tensor([[0, 0, *thinking]]), None)[0]


def test_call_cache_key_covers_thinking_dtype_and_template_kwargs_but_not_execution_options():
    base = pool_config("qwen3")

    def key(**changes):
        cfg = yaml.safe_load(yaml.safe_dump(base))
        cfg["agents"]["qwen3-4b"].update(changes)
        return Pool.from_config(cfg).model_key("qwen3-4b")

    k = key()
    assert key(enable_thinking=True) != k
    assert key(dtype="float16") != k
    assert key(chat_template_kwargs={"enable_thinking": True}) != k
    assert key(kv_reuse=False) == k and key(device_map="auto") == k and key(kv_cache_entries=8) == k


def test_placement_qwen3_on_one_80gb_gpu_swaps_and_on_four_stays_resident():
    fps = pool_footprints(pool_config("qwen3"))
    assert fps["qwen3-32b"].params_b == pytest.approx(32.76, abs=0.01)  # counted from conf/arch, not params_b
    one = plan(fps, parse_gpus("1x80GB"))
    assert set(one.where) == set(fps) and one.on_demand and one.swap_gb_per_task() > 0
    assert "on demand" in one.table()
    four = plan(fps, parse_gpus("4x80GB"))
    assert not four.on_demand and four.swap_gb_per_task() == 0
    assert len({tuple(d) for d in four.where.values()}) == 4  # one agent per GPU
    assert four.agent_options("qwen3-32b")["device"].startswith("cuda:")
    three_small = plan(fps, parse_gpus("3x40GB"))  # the 32B fits no single 40 GB GPU: split over two
    assert three_small.where["qwen3-32b"] == [0, 1] and "max_memory" in three_small.agent_options("qwen3-32b")


def test_placement_refuses_what_cannot_fit_with_a_clear_message(capsys):
    from sale.llm.assets import main

    fps = pool_footprints(pool_config("qwen3"))
    with pytest.raises(PlacementError, match="(?s)cannot place 'qwen3-32b'.*fix:"):
        plan(fps, parse_gpus("1x40GB"))
    assert main(["plan", "pool=qwen3", "gpus=1x40GB"]) == 2
    assert "cannot place" in capsys.readouterr().err
    assert main(["plan", "pool=qwen3", "gpus=4x80GB"]) == 0
    assert "resident" in capsys.readouterr().out
    with pytest.raises(PlacementError, match="gpus=1x80GB"):
        parse_gpus("eighty")


def test_agents_loaded_on_demand_answer_as_resident_ones(tiny_pool):
    # A CPU budget that holds one tiny agent at a time (sizes come from params_b: 1, 2, 4 B in float32).
    swapping = _pool("tiny", gpus="cpu:18GB")
    assert swapping.placement.on_demand == swapping.names
    msgs = [{"role": "user", "content": "Rate this plan."}]
    for name in ["tiny-qwen3-a", "tiny-qwen3-b", "tiny-qwen3-a", "tiny-qwen2-c"]:
        assert (
            swapping.llm(name).generate(msgs, max_tokens=6).text
            == tiny_pool.llm(name).generate(msgs, max_tokens=6).text
        )
    area = swapping._swap_area
    assert area.loads == 4 and area.current.name == "tiny-qwen2-c"
    swapping.close()


@pytest.mark.models
def test_transformers_agrees_with_llamacpp_on_the_same_file():
    from sale.harness.transformers_check import agreement

    _, small = agreement("smollm2-135m", n_prompts=20, max_tokens=16, n_jury=10)
    _, qwen = agreement("qwen2.5-coder-0.5b", n_prompts=5, max_tokens=16, n_jury=10)
    for s in (small, qwen):
        print(s)
        assert s["identical_share"] >= 0.3  # measured at 32 tokens: 0.45 (135M, Q4_1), 0.75 (0.5B)
        assert s["entropy_mean_abs_gap"] < 0.1
        assert s["jury_pearson"] > 0.9


@pytest.mark.models
def test_real_weights_kv_reuse_and_batched_jury_are_exact():
    from sale.harness.transformers_check import jury_batch_speedup, kv_reuse_speedup, load

    llm = load("cpu_hf", "qwen2.5-coder-0.5b")
    assert jury_batch_speedup(llm, n_plans=3, reps=1)["max_abs_gap"] < 1e-3
    assert kv_reuse_speedup(llm, turn=4, max_tokens=12, reps=1)["identical"]
    llm.close()


def test_gpu_benchmark_runs_its_code_path_shrunk_on_the_cpu():
    import importlib.util

    from sale import REPO_ROOT

    spec = importlib.util.spec_from_file_location("bench_gpu_qwen3", REPO_ROOT / "scripts" / "bench_gpu_qwen3.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model, config, _ = bench.build("qwen3-8b", "cpu", tiny=True)
    assert config.model_type == "qwen3" and config.num_key_value_heads == 2
    assert bench.decode_tok_s(model, config.vocab_size, "cpu", batch=2, prompt=16, new=4) > 0
    assert bench.jury_speedup(model, config.vocab_size, "cpu", reps=1) > 0

"""Plumbing of sale.harness.concurrency, the Ledger's concurrent calls, the journal's concurrent writers and the HTTP
backend's retries. Fakes appear only here, where the thing under test is the plumbing itself."""

import json
import subprocess
import sys
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from sale.harness.concurrency import Interrupted, parallel_map, run_streams
from sale.harness.runlog import Journal
from sale.llm import LLMError
from sale.llm.base import Generation, OptionScores
from sale.llm.gate import AgentGate
from sale.llm.stub_server import StubHandler


def test_parallel_map_keeps_item_order_and_runs_items_together():
    barrier = threading.Barrier(4, timeout=10)  # passes only if 4 items are in flight at once

    def slow(x):
        barrier.wait()
        time.sleep(0.01 * (4 - x))  # later items finish first
        return x * x

    assert parallel_map(slow, range(4), concurrency=4) == [0, 1, 4, 9]
    assert parallel_map(lambda x: x + 1, [1, 2], concurrency=1) == [2, 3]


def test_parallel_map_raises_the_first_failure_after_every_item_finished():
    finished = []

    def work(x):
        time.sleep(0.05 if x == 2 else 0)
        if x == 1:
            raise ValueError("item 1")
        finished.append(x)

    with pytest.raises(ValueError, match="item 1"):
        parallel_map(work, range(3), concurrency=3)
    assert sorted(finished) == [0, 2]


class CountingLLM:
    """Records how many calls were in flight at once."""

    def __init__(self, name="a"):
        self.name = name
        self.now = self.peak = 0
        self.lock = threading.Lock()

    def generate(self, messages, max_tokens=256, stop=None, temperature=0.0, seed=0, entropy=False):
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.02)
        with self.lock:
            self.now -= 1
        text = messages[-1]["content"]
        return Generation(text=text, prompt_tokens=3, completion_tokens=len(text), entropies=[0.5], latency_s=0.02)

    def score_options(self, messages, options):
        return OptionScores(options=list(options), probs=[1 / len(options)] * len(options), prompt_tokens=2)


def test_agent_gate_bounds_the_calls_in_flight_to_one_agent():
    llm = CountingLLM()
    gate = AgentGate(llm, limit=2)
    parallel_map(lambda i: gate.generate([{"role": "user", "content": str(i)}]), range(8), concurrency=8)
    assert llm.peak == 2
    assert gate.name == "a"  # everything else passes through


def test_ledger_map_logs_calls_in_item_order_whatever_finishes_first():
    from sale.harness.ledger import Ledger
    from sale.llm import AgentSpec, Pool

    pool = Pool("p", [AgentSpec("a", "openai", 1.0, 1.0)], concurrency=4)
    pool._loaded["a"] = AgentGate(CountingLLM(), 4)
    ledger = Ledger(pool, task_id="t")
    ledger.generate("a", "bid", [{"role": "user", "content": "first"}])
    texts = ledger.map(
        lambda lg, x: lg.generate("a", "jury", [{"role": "user", "content": x}]).text, ["w", "xx", "yyy", "zzzz"]
    )
    assert texts == ["w", "xx", "yyy", "zzzz"]
    assert [c["call_index"] for c in ledger.calls] == [0, 1, 2, 3, 4]
    assert [c["completion_tokens"] for c in ledger.calls] == [5, 1, 2, 3, 4]
    assert all(c["task_id"] == "t" for c in ledger.calls)


def test_streams_stay_in_order_and_run_side_by_side():
    seen, in_flight, peak = [], [0], [0]
    lock = threading.Lock()

    def run_one(item):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return item

    streams = [[("s", i) for i in range(5)], [("t", i) for i in range(5)], [("u", i) for i in range(5)]]
    run_streams(streams, run_one, lambda item, result: seen.append(result), concurrency=3)
    assert peak[0] == 3
    for name in "stu":
        assert [i for s, i in seen if s == name] == list(range(5))


def test_a_failure_stops_new_work_and_keeps_what_was_in_flight():
    done = []

    def run_one(x):
        if x == 3:
            raise RuntimeError("task 3 failed")
        time.sleep(0.1 if x < 3 else 0)
        return x

    with pytest.raises(RuntimeError, match="task 3"):
        run_streams([[x] for x in range(40)], run_one, lambda item, r: done.append(r), concurrency=4)
    assert {0, 1, 2} <= set(done)  # in flight when 3 failed: finished and handed over
    assert len(done) < 39  # nothing much started after the failure


def test_ctrl_c_in_a_sequential_run_is_reported_as_an_interruption():
    def run_one(x):
        raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        run_streams([[1]], run_one, lambda *a: None, concurrency=1)


def test_journal_takes_whole_lines_from_threads_and_processes(tmp_path):
    journal = Journal(tmp_path)
    big = "x" * 200_000  # far beyond one atomic write
    writer = (
        f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "from sale.harness.runlog import Journal\n"
        f"j = Journal({str(tmp_path)!r})\n"
        "for i in range(20): j.append(('proc', 0, str(i)), {'text': 'y' * 200000}, [])\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer])
    parallel_map(lambda i: journal.append(("thread", 0, str(i)), {"text": big}, []), range(20), concurrency=8)
    assert proc.wait(timeout=120) == 0
    records = journal.records()
    assert len(records) == 40
    assert {r["key"][0] for r in records} == {"thread", "proc"}
    for line in (tmp_path / "journal.jsonl").read_text().splitlines():
        json.loads(line)


# ------------------------------------------------------------------------------------ the HTTP backend


class FlakyHandler(StubHandler):
    """Answers with the status codes queued on the server, then with a chat completion."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.server.requests += 1
        if status == "slow":
            time.sleep(1.0)
            status = 200
        body = (
            {
                "choices": [
                    {
                        "message": {"content": "ok"},
                        "finish_reason": "stop",
                        "logprobs": {
                            "content": [
                                {"token": "ok", "logprob": -0.1, "top_logprobs": [{"token": "ok", "logprob": -0.1}]}
                            ]
                        },
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1},
            }
            if status == 200
            else {"error": "busy"}
        )
        self._send(status, body)


@pytest.fixture
def flaky_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    server.statuses, server.requests = [], 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def http_llm(url, **kw):
    from sale.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM("agent-x", base_url=url, model="m", backoff_s=0.01, **kw)


MSG = [{"role": "user", "content": "hi"}]


def test_http_backend_retries_429_and_5xx_then_succeeds(flaky_server):
    flaky_server.statuses = [503, 429, 502]
    gen = http_llm(f"http://127.0.0.1:{flaky_server.server_address[1]}/v1", retries=4).generate(MSG)
    assert gen.text == "ok" and flaky_server.requests == 4


def test_http_backend_does_not_retry_a_client_error(flaky_server):
    flaky_server.statuses = [400]
    with pytest.raises(LLMError, match="agent-x.*answered 400"):
        http_llm(f"http://127.0.0.1:{flaky_server.server_address[1]}/v1").generate(MSG)
    assert flaky_server.requests == 1


def test_http_backend_gives_up_after_its_tries_naming_agent_and_url(flaky_server):
    flaky_server.statuses = [500] * 10
    url = f"http://127.0.0.1:{flaky_server.server_address[1]}/v1"
    with pytest.raises(LLMError, match=f"agent-x: cannot reach {url}/chat/completions after 3 tries"):
        http_llm(url, retries=3).generate(MSG)
    assert flaky_server.requests == 3


def test_http_backend_times_out_per_request_without_retrying(flaky_server):
    flaky_server.statuses = ["slow"]
    with pytest.raises(LLMError, match="did not answer within 0.2 s"):
        http_llm(f"http://127.0.0.1:{flaky_server.server_address[1]}/v1", timeout_s=0.2).generate(MSG)
    assert flaky_server.requests == 1


def test_http_backend_on_a_dead_port_says_so():
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LLMError, match=f"agent-x: cannot reach {url}.*ConnectError.*Is the server running"):
        http_llm(url, retries=2).generate(MSG)


def test_cpu_room_lets_one_model_compute_at_a_time_with_its_calls_together():
    from sale.llm.gate import CpuRoom

    room, lock, log = CpuRoom(), threading.Lock(), []
    inside: dict[str, int] = {}
    peak: dict[str, int] = {}

    def call(agent):
        with room.enter(agent):
            with lock:
                inside[agent] = inside.get(agent, 0) + 1
                peak[agent] = max(peak.get(agent, 0), inside[agent])
                log.append({a for a, n in inside.items() if n})
            time.sleep(0.05)
            with lock:
                inside[agent] -= 1

    parallel_map(call, ["a", "a", "b", "a", "b", "c", "b", "a"], concurrency=8)
    assert all(len(agents) == 1 for agents in log)  # never two models at once
    assert max(peak.values()) >= 2  # but calls to one model batch together
    assert sorted(peak) == ["a", "b", "c"]  # nobody starved


def test_slot_picker_never_hands_one_slot_to_two_calls_and_prefers_the_shared_prefix():
    from sale.llm.slots import SlotPicker

    picker, lock = SlotPicker(2), threading.Lock()
    holders: dict[int, int] = {0: 0, 1: 0}
    peak = []

    def call(i):
        with picker.take([{"role": "user", "content": f"task {i % 3}"}]) as slot:
            with lock:
                holders[slot] += 1
                peak.append(max(holders.values()))
            time.sleep(0.01)
            with lock:
                holders[slot] -= 1

    parallel_map(call, range(12), concurrency=6)  # six threads, two slots: the others wait for a free one
    assert max(peak) == 1

    task = [{"role": "system", "content": "rate"}, {"role": "user", "content": "the task " * 20 + "plan A"}]
    other = [{"role": "user", "content": "something else"}]
    with picker.take(task) as first:
        pass
    with picker.take(other) as second:  # the least recently used slot, not the one holding the task
        assert second != first
    with picker.take([*task[:1], {"role": "user", "content": "the task " * 20 + "plan B"}]) as again:
        assert again == first  # the slot that holds the task's prefix

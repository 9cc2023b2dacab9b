"""A STUB SERVER, not a model: it answers every chat completion after a fixed delay with a fixed reply.

It exists to measure the harness alone (scripts/bench_concurrency.py, target=stub): with the model's time fixed
at `delay_s`, whatever a run takes beyond it is the runner's own overhead, and the speed-up at N requests in flight
shows whether the harness could keep a GPU server busy. Its reply is a deep-search answer ("Action: answer[stub]"),
so a PhantomWiki task costs exactly one call; its jury ratings are uniform. Never use its numbers as results.

    python -m sale.llm.stub_server --delay-s 0.2     # pool=stub starts it itself

Faults, for scripts/faults.py: the environment variable SALE_STUB_FAULT (JSON, read at start; a server the runner
starts inherits it) makes the stub misbehave, so a run's config, and so its run directory, stays the same:
  {"status": 500, "first": 3}     answer the first 3 chat requests with 500 (no "first": every request)
  {"die_after": 5}                exit abruptly on the 6th request; {"hang_after": 5}: never answer from the 6th
  {"body": "<html>"}              answer 200 with this raw body (not JSON); with "first" as above
  {"no_logprobs": true}           completions without log-probabilities
  {"jury_tokens": [["x", -0.1]]}  the top log-probabilities of a one-token (jury) answer, as given
  {"replies": ["text", ...]}      generated texts, one per request in turn (cycling)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPLY = "Action: answer[stub]"


class StubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # headers and body go out in two writes: Nagle would hold the second for 40 ms

    def do_GET(self):
        self._send(200, {"status": "ok"})

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        fault = getattr(self.server, "fault", None) or {}
        n = next(self.server.counter) if fault else 0  # this request's number, from 1
        if "die_after" in fault and n > fault["die_after"]:
            os._exit(3)
        if "hang_after" in fault and n > fault["hang_after"]:
            threading.Event().wait()
        time.sleep(self.server.delay_s)
        faulty = n <= fault.get("first", n)
        if "status" in fault and faulty:
            return self._send(int(fault["status"]), {"error": {"message": "stub fault", "code": fault["status"]}})
        if "body" in fault and faulty:
            return self._send_raw(200, fault["body"].encode())
        k = int(request.get("top_logprobs") or 1)
        if int(request.get("max_tokens") or 1) == 1:  # a jury rating: one token, the digits equally likely
            tokens = [{"token": str(d), "logprob": -1.791759} for d in range(6)][:k]
            if "jury_tokens" in fault:
                tokens = [{"token": t, "logprob": lp} for t, lp in fault["jury_tokens"]]
            content, steps = "0", [{"token": "0", "logprob": -1.791759, "top_logprobs": tokens}]
        else:
            content = REPLY
            if fault.get("replies"):
                content = fault["replies"][(n - 1) % len(fault["replies"])]
            steps = [
                {"token": t, "logprob": -0.05, "top_logprobs": [{"token": t, "logprob": -0.05}]}
                for t in (("Action", ":", " answer", "[", "stub", "]") if content == REPLY else content.split())
            ]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "stop",
            "logprobs": {"content": steps},
        }
        if fault.get("no_logprobs"):
            del choice["logprobs"]
        self._send(200, {"choices": [choice], "usage": {"prompt_tokens": 100, "completion_tokens": len(steps)}})

    def _send(self, status: int, body: dict) -> None:
        self._send_raw(status, json.dumps(body).encode())

    def _send_raw(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class StubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # a benchmark opens up to 64 connections at once
    delay_s: float = 0.2
    fault: dict = {}
    counter: itertools.count


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m sale.llm.stub_server", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--delay-s", type=float, default=0.2, help="seconds before each answer")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--url-file", default=None)
    args = ap.parse_args(argv)
    server = StubServer(("127.0.0.1", args.port), StubHandler)
    server.delay_s = args.delay_s
    server.fault = json.loads(os.environ.get("SALE_STUB_FAULT") or "{}")
    server.counter = itertools.count(1)  # next() is atomic under the GIL: each request gets its own number
    if server.fault:
        print(f"[sale.llm.stub_server] FAULT injected: {server.fault}", flush=True)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"[sale.llm.stub_server] STUB (fixed {args.delay_s} s answers, not a model) on {url}", flush=True)
    if args.url_file:
        tmp = Path(args.url_file).with_suffix(".tmp")
        tmp.write_text(url)
        tmp.replace(args.url_file)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

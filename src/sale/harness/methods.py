"""Methods: who executes each task. Every method logs the same result schema through the same Ledger.

A method has arms (e.g. one per agent for `single`, one per threshold for a router sweep). The runner calls
`start(arm, order, history)` before each task stream (history = that stream's journalled records, so state such
as SALE's memory is rebuilt on resume) and `run(arm, order, task, ledger)` for each task. `run` may be called from
several threads at once (sale.harness.concurrency): for different tasks of a method that is not `sequential`, and for
different (arm, order) streams of one that is; state must therefore live per (arm, order).
"""

from __future__ import annotations

import json
import random
import time

import numpy as np

from sale.agents import run_agent
from sale.harness.ledger import Ledger
from sale.tasks.graders import completion_from_code, grade_answer, grade_humaneval

# ----------------------------------------------------------------------------------------- execution


def grade(task, output: str):
    if task.domain == "coding":
        problem = task.payload
        return grade_humaneval(problem, completion_from_code(problem, output) if output else "    pass\n")
    return grade_answer(output, list(task.payload["answers"]))


def execute(ledger: Ledger, agent: str, task, plan: str | None, agent_cfg) -> dict:
    """Run agent's scaffold on task (with an optional plan) and grade it. Returns the execution's result fields."""
    t0 = time.perf_counter()
    options = dict(agent_cfg.get("search") or {}) if task.domain == "search" else {}
    res = run_agent(
        ledger,
        agent,
        task,
        plan,
        prompts=agent_cfg.prompts,
        max_turns=int(agent_cfg.max_turns[task.domain]),
        max_tokens=int(agent_cfg.max_tokens[task.domain]),
        **options,
    )
    g = grade(task, res.output)
    return {
        "agent": agent,
        "passed": bool(g.passed),
        "grade_status": g.status,
        "output": res.output,
        "plan": plan,
        "turns": res.turns,
        "malformed": res.malformed,
        "self_check": res.self_check,
        "tool_actions": res.tool_actions,
        "forced": res.forced,
        "trajectory": json.dumps(res.trajectory),
        "exec_wall_s": time.perf_counter() - t0,
    }


class Method:
    arms: list[str]
    order_dependent = False  # True when the task order can change what happens (SALE's memory, random draws)
    sequential = False  # True when a task depends on the tasks before it in its order (SALE's memory)

    def start(self, arm: str, order: int, history: list[dict]) -> None:
        pass

    def run(self, arm: str, order: int, task, ledger: Ledger) -> tuple[dict, list[dict]]:
        """Returns (result fields, bid rows)."""
        raise NotImplementedError


def resolve_agents(spec, pool) -> list[str]:
    if spec in (None, "all"):
        return pool.names
    if spec == "largest":
        return [pool.largest.name]
    if spec == "smallest":
        return [pool.names[0]]
    names = [spec] if isinstance(spec, str) else list(spec)
    for n in names:
        pool.spec(n)  # a clear error for an unknown agent
    return names


class SingleAgent(Method):
    """Each named agent alone on every task (`agents: all` builds the outcome matrix)."""

    def __init__(self, cfg, pool, agent_cfg):
        self.arms = resolve_agents(cfg.agents, pool)
        self.agent_cfg = agent_cfg

    def run(self, arm, order, task, ledger):
        return execute(ledger, arm, task, None, self.agent_cfg), []


# ------------------------------------------------------------------------------------------------ SALE


def load_weights_for(path, pool, bid_max_tokens: int, any_bid_cap: bool = False):
    """A fitted weights file, refused with the fix when it does not fit this run: unreadable, fitted for other
    agents, or fitted at another bid cap (the cost term divides a bid's length by the cap) unless any_bid_cap."""
    from sale.auction.weights import Weights

    refit = (
        f"fit weights for this pool and cap (python -m sale.run experiment=scaling tasks.split=train "
        f"pool={pool.name}, then python -m sale.fit pool={pool.name} auction.bid_max_tokens={bid_max_tokens}), "
        f"or set auction.weights.path=null for the default weights"
    )
    try:
        weights = Weights.load(path)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"cannot read the weights file {path}: {e}\n  fix: {refit}") from e
    fitted_pool = weights.provenance.get("pool", "?")
    if set(weights.w_jury) != set(pool.names):
        raise ValueError(
            f"weights {path} were fitted for pool {fitted_pool!r} (agents {sorted(weights.w_jury)}), not "
            f"this run's pool {pool.name!r} (agents {sorted(pool.names)})\n  fix: {refit}"
        )
    fitted_cap = weights.provenance.get("bid_max_tokens")
    if fitted_cap is not None and int(fitted_cap) != bid_max_tokens and not any_bid_cap:
        raise ValueError(
            f"weights {path} were fitted with bids capped at {fitted_cap} tokens, and this run caps them "
            f"at {bid_max_tokens} (auction.bid_max_tokens): the cost term divides a bid's length by the "
            f"cap, so they would price bids unlike their fit\n  fix: {refit}; or, to apply them at this "
            f"cap on purpose (as the short_bids ablation does), auction.weights.any_bid_cap=true"
        )
    return weights


class Sale(Method):
    def __init__(self, cfg, pool, agent_cfg, auction_cfg, embedder, seed: int):
        from sale.auction.memory import AuctionMemory
        from sale.auction.weights import Weights

        self.arms = ["sale"]
        self.order_dependent = self.sequential = True
        self.pool, self.agent_cfg, self.cfg, self.embedder, self.seed = pool, agent_cfg, auction_cfg, embedder, seed
        if auction_cfg.weights.path:
            self.weights = load_weights_for(
                auction_cfg.weights.path,
                pool,
                int(auction_cfg.bid_max_tokens),
                bool(auction_cfg.weights.get("any_bid_cap")),
            )
        else:
            self.weights = Weights.default(pool.names)
        AuctionMemory(k=int(auction_cfg.memory.k), label=auction_cfg.memory.label)  # a bad label fails here
        self.memories: dict[tuple[str, int], AuctionMemory] = {}  # one per task stream: (arm, order)

    def start(self, arm, order, history):
        from sale.auction.bids import Bid
        from sale.auction.memory import AuctionMemory, AuctionRecord

        memory = self.memories[(arm, order)] = AuctionMemory(k=int(self.cfg.memory.k), label=self.cfg.memory.label)
        for record in history:  # rebuild the memory exactly as it stood after each journalled auction
            bids = [Bid.from_row(b) for b in record["bids"]]
            winner = next(i for i, b in enumerate(record["bids"]) if b["final_winner"])
            r = record["result"]
            memory.add(
                AuctionRecord(
                    r["task_id"], r["description"], self.embedder([r["description"]])[0], bids, winner, r["passed"]
                )
            )

    def run(self, arm, order, task, ledger):
        from sale.auction.memory import AuctionRecord
        from sale.auction.sale import run_auction

        rng = random.Random(f"{self.seed}/{order}/{task.id}")
        memory = self.memories[(arm, order)]
        embedding = self.embedder([task.description])[0]
        auction = run_auction(ledger, self.pool, task, embedding, memory, self.weights, self.cfg, rng)
        win = auction.winning_bid
        result = execute(ledger, win.agent, task, win.plan or None, self.agent_cfg)
        memory.add(AuctionRecord(task.id, task.description, embedding, auction.bids, auction.winner, result["passed"]))
        result.update(
            description=task.description,
            provisional_agent=auction.bids[auction.provisional].agent,
            winner_refined=win.refined,
        )
        bids = [
            {
                **b.to_row(),
                "task_id": task.id,
                "bid_index": i,
                "provisional_winner": i == auction.provisional,
                "final_winner": i == auction.winner,
            }
            for i, b in enumerate(auction.bids)
        ]
        return result, bids


# --------------------------------------------------------------------------------------------- baselines


class Oracle(Method):
    """The cheapest agent that passes, else the largest: an upper bound. Only the chosen trace is charged."""

    def __init__(self, cfg, pool, agent_cfg):
        self.arms, self.pool, self.agent_cfg = ["oracle"], pool, agent_cfg

    def run(self, arm, order, task, ledger):
        for agent in self.pool.names:
            trial = ledger.for_task()
            result = execute(trial, agent, task, None, self.agent_cfg)
            if result["passed"] or agent == self.pool.largest.name:
                ledger.calls.extend(trial.calls)
                return result, []
        raise AssertionError("unreachable")


class Cascade(Method):
    """Cheapest first; escalate while the verifier rejects. Every executed trace is charged.
    Verifier: the docstring examples for coding; for search, the agent's own check (it committed an answer and,
    asked whether that answer is correct, puts more probability on Yes than No)."""

    def __init__(self, cfg, pool, agent_cfg):
        self.arms, self.pool, self.agent_cfg = ["cascade"], pool, agent_cfg

    def accepts(self, ledger, agent, task, result) -> bool:
        if not result["self_check"]:
            return False
        if task.domain == "coding":
            return True
        question = [
            {
                "role": "user",
                "content": f"Question: {task.payload['question']}\nProposed answer: "
                f"{result['output']}\nIs the proposed answer correct? Reply Yes or No.",
            }
        ]
        scores = ledger.score_options(agent, "verify", question, ["Yes", "No"])
        return scores.probs[0] >= scores.probs[1]

    def run(self, arm, order, task, ledger):
        for depth, agent in enumerate(self.pool.names):
            result = execute(ledger, agent, task, None, self.agent_cfg)
            if agent == self.pool.largest.name or self.accepts(ledger, agent, task, result):
                result["cascade_depth"] = depth
                return result, []
        raise AssertionError("unreachable")


class RandomRouter(Method):
    """The largest agent with probability `largest_share`, else a uniformly random cheaper agent."""

    def __init__(self, cfg, pool, agent_cfg, seed: int):
        shares = [float(s) for s in cfg.largest_shares]
        if cfg.get("match_run"):
            from sale.harness.runlog import load_logs

            sale = load_logs(cfg.match_run)["results"]
            if not sale.empty:
                shares.append(round(float((sale["agent"] == pool.largest.name).mean()), 3))
        self.arms = [f"random:{s:g}" for s in dict.fromkeys(shares)]
        self.order_dependent = True
        self.pool, self.agent_cfg, self.seed = pool, agent_cfg, seed

    def run(self, arm, order, task, ledger):
        share = float(arm.split(":")[1])
        rng = random.Random(f"{self.seed}/{order}/{task.id}")
        agent = self.pool.largest.name if rng.random() < share else rng.choice(self.pool.names[:-1])
        return execute(ledger, agent, task, None, self.agent_cfg), []


class LearnedRouter(Method):
    """kNN or multi-label-classifier router on task-description embeddings, fitted on a training run's outcome
    matrix (a `method=single` run on the train split). One arm per threshold theta (rule: cheapest agent with
    p >= theta, else the largest) and per lambda (rule: argmax lambda*p - mean cost). lambda is given in units of
    the largest agent's mean train cost per task, so that one lambda grid means the same on every pool."""

    def __init__(self, cfg, pool, agent_cfg, embedder):
        from sale.harness.runlog import load_logs
        from sale.routers.knn import KNNRouter
        from sale.routers.mlc import MLCRouter

        self.pool, self.agent_cfg, self.embedder = pool, agent_cfg, embedder
        train = load_logs(cfg.train_run)["results"]
        if train.empty:
            raise ValueError(
                f"method.train_run={cfg.train_run!r} holds no results.parquet; run "
                "`python -m sale.run experiment=scaling tasks.split=train` first"
            )
        matrix = train.pivot_table(index="task_id", columns="agent", values="passed", aggfunc="mean")
        missing = [a for a in pool.names if a not in matrix.columns]
        if missing:
            raise ValueError(f"train run {cfg.train_run} has no outcomes for agents {missing}")
        matrix = matrix[pool.names].dropna()
        desc = train.drop_duplicates("task_id").set_index("task_id").loc[matrix.index, "description"]
        self.mean_cost = train.groupby("agent")["cost_usd"].mean().reindex(pool.names).to_numpy()
        router = KNNRouter(k=int(cfg.k)) if cfg.name == "knn" else MLCRouter()
        router.fit(embedder(list(desc)), (matrix.to_numpy() > 0.5).astype(int))
        self.router = router
        self.arms = [f"{cfg.name}:theta={t:g}" for t in cfg.thetas] + [f"{cfg.name}:lambda={l:g}" for l in cfg.lambdas]

    def run(self, arm, order, task, ledger):
        from sale.routers.rules import cheapest_above, willingness_to_pay

        p = self.router.predict_proba(self.embedder([task.description]))
        prices = np.array([a.price for a in self.pool.agents])
        rule, value = arm.split(":")[1].split("=")
        if rule == "theta":
            agent_index = int(cheapest_above(p, prices, float(value))[0])
        else:
            agent_index = int(willingness_to_pay(p, self.mean_cost, float(value) * self.mean_cost.max())[0])
        result = execute(ledger, self.pool.names[agent_index], task, None, self.agent_cfg)
        result["router_p"] = json.dumps([float(x) for x in p[0]])
        return result, []


def build_method(cfg, pool, embedder) -> Method:
    m = cfg.method
    if m.name == "single":
        return SingleAgent(m, pool, cfg.agent)
    if m.name == "sale":
        return Sale(m, pool, cfg.agent, cfg.auction, embedder, int(cfg.seed))
    if m.name == "oracle":
        return Oracle(m, pool, cfg.agent)
    if m.name == "cascade":
        return Cascade(m, pool, cfg.agent)
    if m.name == "random":
        return RandomRouter(m, pool, cfg.agent, int(cfg.seed))
    if m.name in ("knn", "mlc"):
        return LearnedRouter(m, pool, cfg.agent, embedder)
    raise ValueError(f"unknown method {m.name!r}; one of single, sale, oracle, cascade, random, knn, mlc")

"""The Hydra entry point end to end on the tiny pool: logs, resumption after a kill, refusal of a changed config."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from omegaconf import OmegaConf

from sale import CONF_DIR, DATA_DIR, REPO_ROOT
from sale.config import compose
from sale.harness.runlog import Journal


def sale_run(run_dir, *overrides, **kw):
    cmd = [
        sys.executable,
        "-m",
        "sale.run",
        "pool=tiny",
        "tasks=mixed",
        "tasks.per_bin=1",
        f"run.dir={run_dir}",
        f"run.cache={run_dir}/calls.sqlite",
        "run.figure=false",
        *overrides,
    ]
    return subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        **kw,
    )


@pytest.mark.parametrize("experiment", ["demo", "scaling", "main", "ablations"])
def test_experiment_configs_compose(experiment):
    cfg = compose(*[f"experiment={experiment}"])
    assert cfg.pool.name == "cpu" and cfg.tasks.per_bin >= 1
    assert cfg.method.name == {"demo": "sale", "scaling": "single", "main": "sale", "ablations": "sale"}[experiment]


ABLATIONS = sorted(p.stem for p in (CONF_DIR / "ablation").glob("*.yaml"))


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_every_ablation_changes_one_thing_and_has_its_own_run(ablation):
    from omegaconf import OmegaConf

    base = compose(*["experiment=ablations", "ablation=full"])
    cfg = compose(*["experiment=ablations", f"ablation={ablation}"])
    assert cfg.run.name == f"ablation-{ablation}-cpu"
    changed = [
        k
        for k in ("auction", "tasks", "method", "pool", "agent")
        if OmegaConf.to_container(cfg[k]) != OmegaConf.to_container(base[k])
    ]
    assert changed == ([] if ablation == "full" else ["auction"])
    swept = compose(*["experiment=ablations"], return_hydra_config=True)
    assert ablation in swept.hydra.sweeper.params.ablation.split(",")


def test_order_independent_methods_run_one_order(tmp_path, tiny_pool):
    out = sale_run(
        tmp_path / "r", "method=single", "method.agents=smallest", "run.limit=2", "run.orders=3"
    ).communicate(timeout=300)[0]
    assert "running 1 order, not 3" in out and "2 to run" in out, out[-2000:]
    assert len(pd.read_parquet(tmp_path / "r" / "results.parquet")) == 2


def test_sale_orders_run_as_separate_processes_into_one_run_directory(tmp_path, tiny_pool):
    """run.only_order: SALE's task orders as separate jobs (a cluster's), appending to one journal at once."""
    run_dir = tmp_path / "r"
    args = ["method=sale", "run.limit=3", "run.orders=2"]
    jobs = [sale_run(run_dir, *args, f"run.only_order={o}") for o in (0, 1)]
    outs = [job.communicate(timeout=600)[0] for job in jobs]
    assert all(job.returncode == 0 for job in jobs), outs[0][-2000:] + outs[1][-2000:]
    assert "3 tasks x 1 orders" in outs[0]
    records = Journal(run_dir).records()
    assert sorted((r["key"][1], r["key"][2]) for r in records) == sorted(
        (o, r["key"][2]) for o in (0, 1) for r in records if r["key"][1] == 0
    )
    assert len(records) == 6
    out = sale_run(run_dir, *args).communicate(timeout=300)[0]  # all orders: nothing left, logs of both
    assert "6 done, 0 to run" in out, out[-2000:]
    assert sorted(pd.read_parquet(run_dir / "results.parquet")["order"]) == [0, 0, 0, 1, 1, 1]
    bad = sale_run(run_dir, *args, "run.only_order=2").communicate(timeout=300)[0]
    assert "run.only_order=2 is not one of this run's orders 0..1" in bad


def test_resuming_tolerates_a_config_key_added_later_with_a_null_default(tmp_path):
    from omegaconf import OmegaConf

    from sale.harness.runner import check_same_config

    cfg = compose(*["experiment=scaling"])
    old = OmegaConf.to_container(cfg, resolve=True)
    del old["tasks"]["take_per_bin"]  # a run saved before the key existed
    OmegaConf.save(OmegaConf.create(old), tmp_path / "config.yaml")
    check_same_config(tmp_path, cfg)  # no error
    cfg.tasks.take_per_bin = 2
    with pytest.raises(SystemExit, match="tasks differ"):
        check_same_config(tmp_path, cfg)


@pytest.mark.parametrize("method", ["knn", "sale"])
def test_runs_staged_under_another_data_dir_resume_once_moved_in(tmp_path, method):
    """scripts/rerun_search_agent.sh stages a rerun under data/next; its runs name their inputs (the routers' train
    run, SALE's weights) there. Moved into data/ with those inputs, they resume; pointed at other inputs, refused."""
    from omegaconf import OmegaConf

    from sale.harness.runner import check_same_config

    def main(*overrides):
        return compose(*["experiment=main", f"method={method}", *overrides])

    staged = main("data_dir=data/next")
    assert staged.run.dir == "data/next/runs/main-{}-cpu".format(method)
    check_same_config(tmp_path, staged)
    check_same_config(tmp_path, main())  # moved in: data_dir is data again
    old = OmegaConf.to_container(main(), resolve=True)
    del old["data_dir"]  # a run saved before the key existed names data/... paths
    OmegaConf.save(OmegaConf.create(old), tmp_path / "config.yaml")
    check_same_config(tmp_path, staged)
    other_input = (
        ["method.train_run=data/runs/scaling-cpu-test"]
        if method == "knn"
        else ["auction.weights.path=data/weights/cpu/mean.json"]
    )
    with pytest.raises(SystemExit, match=("method" if method == "knn" else "auction") + " differ"):
        check_same_config(tmp_path, main(*other_input))


def test_killed_run_resumes_without_losing_or_repeating_work(tmp_path, tiny_pool):
    """SIGKILL with 4 tasks in flight (4 task orders, each a SALE stream, at run.concurrency=4), then a rerun: nothing
    lost, nothing done twice, and the same decisions as an uninterrupted run one task at a time."""
    from sale.auction.weights import Weights

    # Entropy-only weights make the provisional winner vary between tasks, so cheaper agents refine from memory
    # and the resumed run must rebuild that memory from the journal to reach the same decisions. The jurors keep a
    # negligible weight: a juror with weight 0 is not consulted, and the jury's calls are part of what must resume.
    weights = tmp_path / "weights.json"
    Weights(w_cost=0.0, w_entropy=1.0, w_jury={a: 1e-9 for a in tiny_pool.names}).save(weights)
    args = ["method=sale", "run.limit=5", "run.orders=4", f"auction.weights.path={weights}"]
    reference = sale_run(tmp_path / "uninterrupted", *args).communicate(timeout=900)[0]
    assert "pass@1" in reference, reference[-3000:]

    run_dir = tmp_path / "run"
    proc = sale_run(run_dir, *args, "run.concurrency=4")
    journal = run_dir / "journal.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 5:
            break
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stdout.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(journal, "a") as f:  # a kill mid-write leaves half a line behind
        f.write('{"key": ["sale", 1, "half')
    before = {tuple(r["key"]): r for r in Journal(run_dir).records()}
    assert 5 <= len(before) < 20
    assert len({k[1] for k in before}) > 1  # the orders ran side by side

    out = sale_run(run_dir, *args, "run.concurrency=4").communicate(timeout=900)[0]
    assert f"{len(before)} done, {20 - len(before)} to run, 4 in flight" in out, out[-3000:]
    results = pd.read_parquet(run_dir / "results.parquet")
    assert len(results) == 20 and not results.duplicated(["arm", "order", "task_id"]).any()
    after = {tuple(r["key"]): r for r in Journal(run_dir).records()}
    assert all(after[k] == v for k, v in before.items())  # finished work is kept as it was
    bids = pd.read_parquet(run_dir / "bids.parquet")
    assert bids.groupby(["order", "task_id"])["final_winner"].sum().eq(1).all()
    calls = pd.read_parquet(run_dir / "calls.parquet")
    assert set(calls["phase"]) >= {"bid", "jury", "execute"}
    assert results["cost_usd"].sum() == pytest.approx(calls["cost_usd"].sum())
    assert bids["refined"].any()

    cols = ["order", "task_id", "agent", "plan", "passed", "tokens"]
    expected = pd.read_parquet(tmp_path / "uninterrupted" / "results.parquet")[cols].sort_values(cols[:2])
    assert results[cols].sort_values(cols[:2]).reset_index(drop=True).equals(expected.reset_index(drop=True))
    # each task's calls are logged in the same order as one task at a time
    ref_calls = pd.read_parquet(tmp_path / "uninterrupted" / "calls.parquet")
    key = ["order", "task_id", "call_index"]
    cols = key + ["agent", "phase", "tokens"]
    assert (
        calls[cols]
        .sort_values(key)
        .reset_index(drop=True)
        .equals(ref_calls[cols].sort_values(key).reset_index(drop=True))
    )


def test_a_run_killed_with_many_tasks_in_flight_on_a_served_pool_resumes(tmp_path):
    """Plumbing at 16 in flight, against the stub server (fixed 1 s answers; pool=stub): kill, rerun, nothing lost
    or repeated, and the server the killed run started does not outlive it."""
    args = [
        "pool=stub",
        "tasks=phantomwiki",
        "tasks.per_bin=null",
        "method=single",
        "run.limit=64",
        "run.concurrency=16",
        "pool.agents.stub.serve.delay_s=1.0",
    ]
    run_dir = tmp_path / "run"
    proc = sale_run(run_dir, *args)
    journal = run_dir / "journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and len(journal.read_text().splitlines()) >= 16:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stdout.read()[-2000:]
    server_pid = int(subprocess.check_output(["pgrep", "-P", str(proc.pid), "-f", "stub_server"]).split()[0])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {tuple(r["key"]) for r in Journal(run_dir).records()}
    assert 16 <= len(before) < 64
    deadline = time.time() + 10
    while time.time() < deadline and os.path.exists(f"/proc/{server_pid}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{server_pid}"), "the stub server outlived the killed run"

    out = sale_run(run_dir, *args).communicate(timeout=300)[0]
    assert f"{len(before)} done, {64 - len(before)} to run, 16 in flight" in out, out[-3000:]
    results = pd.read_parquet(run_dir / "results.parquet")
    assert len(results) == 64 and not results.duplicated(["arm", "order", "task_id"]).any()
    assert (results["started_at"] < results["finished_at"]).all()


def test_a_run_directory_refuses_another_config(tmp_path, tiny_pool):
    run_dir = tmp_path / "run"
    first = sale_run(run_dir, "method=single", "method.agents=smallest", "run.limit=2").communicate(timeout=300)[0]
    assert "pass@1" in first, first[-2000:]
    second = sale_run(run_dir, "method=single", "method.agents=largest", "run.limit=2")
    out = second.communicate(timeout=300)[0]
    assert second.returncode != 0 and "different config (method differ)" in out


def test_an_archived_run_refuses_another_engine_and_names_the_one_that_made_it(tmp_path):
    """The archived 6-turn cpu runs (data/runs/archive/*-react6) were made by llama-cpp-python; the default engine is
    refused there, by name, before any model loads, and pool=cpu_llamacpp is exactly their pool."""
    from sale.harness.runner import check_same_config

    run_dir = tmp_path / "scaling-cpu-test"
    run_dir.mkdir()
    archived = DATA_DIR / "runs" / "archive" / "scaling-cpu-test-react6"
    (run_dir / "config.yaml").write_text((archived / "config.yaml").read_text())
    default = compose(*["experiment=scaling"])
    old_engine = compose(*["experiment=scaling", "pool=cpu_llamacpp"])
    with pytest.raises(
        SystemExit,
        match=r"(?s)pool(, \w+)* differ.*made by the llamacpp engine.*uses xllamacpp.*"
        r"pool=cpu_llamacpp",
    ):
        check_same_config(run_dir, default)
    # The same pool resumes it, with the agent scaffold the run was made with (the deep-search agent has changed
    # since, and a changed agent is refused like any other change).
    from omegaconf import OmegaConf, open_dict

    committed = OmegaConf.load(run_dir / "config.yaml")
    with open_dict(old_engine):
        old_engine.agent = committed.agent
    check_same_config(run_dir, old_engine)


@pytest.mark.parametrize("experiment, run_name", [("scaling", "scaling-cpu-test"), ("main", "main-sale-cpu")])
def test_the_committed_reference_runs_resume_on_the_default_config(experiment, run_name):
    """The committed reference runs were made by the default config (xllamacpp, the 16-turn deep-search agent), so
    `python -m sale.run experiment=...` resumes them as they are: a change to the config or the prompts that would
    refuse them must come with a rerun."""
    from sale.harness.runner import check_same_config

    run_dir = DATA_DIR / "runs" / run_name
    assert (run_dir / "config.yaml").exists()
    overrides = [f"experiment={experiment}"] + (["method=sale"] if experiment == "main" else [])
    check_same_config(run_dir, compose(*overrides), save=False)


def test_bad_config_values_are_clear_errors(tmp_path, tiny_pool):
    proc = sale_run(tmp_path / "r1", "method=single", "method.agents=gpt-9")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1 and "no agent 'gpt-9'" in out
    proc = sale_run(tmp_path / "r2", "tasks.split=validation")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1 and "split must be one of" in out


def test_every_baseline_runs_through_hydra_in_the_same_schema(tmp_path, tiny_pool):
    """single first; the other methods then execute the same calls, so they come from the shared call cache."""
    from sale.run import run

    def compose_run(method, *extra):
        cfg = compose(
            *[
                "pool=tiny",
                "tasks=mixed",
                "tasks.per_bin=1",
                "tasks.bins=[1]",
                f"method={method}",
                f"run.dir={tmp_path / method}",
                f"run.cache={tmp_path / 'calls.sqlite'}",
                "run.figure=false",
                *extra,
            ]
        )
        return pd.read_parquet(run(cfg) / "results.parquet")

    single = compose_run("single")
    schema = set(single.columns)
    from sale.harness.runlog import code_version

    assert (single["commit"] == code_version()["commit"]).all() and "dirty" in single  # the code of every task
    train = f"method.train_run={tmp_path / 'single'}"
    for method, extra in [
        ("oracle", []),
        ("cascade", []),
        ("random", ["method.largest_shares=[0.5]"]),
        ("knn", [train, "method.k=1", "method.thetas=[0.5]", "method.lambdas=[0,1]"]),
        ("mlc", [train, "method.thetas=[0.5]", "method.lambdas=[0,1]"]),
    ]:
        results = compose_run(method, *extra)
        assert len(results) == 2 * results["arm"].nunique() and results["agent"].isin(tiny_pool.names).all()
        assert schema - {"cascade_depth", "router_p"} <= set(results.columns), method
        calls = pd.read_parquet(tmp_path / method / "calls.parquet")
        assert results["cost_usd"].sum() == pytest.approx(calls["cost_usd"].sum())
        executed = calls[calls["phase"] == "execute"]
        assert executed["cached"].all(), f"{method} re-ran an execution that single had made"
        if method in ("knn", "mlc"):  # willingness to pay nothing for success buys the cheapest agent
            assert (results.loc[results["arm"] == f"{method}:lambda=0", "agent"] == tiny_pool.names[0]).all()


@pytest.mark.parametrize("prompt", ["auction.prompts.bid", "agent.prompts.searcher.system"])
def test_a_prompt_edit_does_not_resume_a_committed_run(prompt):
    """Prompts are config: a rerun of the committed SALE run after a prompt edit is refused in one line that names
    the prompt, instead of mixing tasks made under two prompts."""
    from sale.harness.runner import check_same_config

    cfg = compose("experiment=main", "method=sale")
    OmegaConf.update(cfg, prompt, OmegaConf.select(cfg, prompt) + "Be brief.\n")
    with pytest.raises(SystemExit) as refused:
        check_same_config(DATA_DIR / "runs" / "main-sale-cpu", cfg, save=False)
    message = str(refused.value)
    assert f"made with other prompts ({prompt} changed)" in message and "run.name=" in message
    assert "\n" not in message


def test_only_sale_runs_are_tied_to_the_auction_config(tmp_path):
    from sale.harness.runner import check_same_config

    single = compose(*["method=single"])
    sale = compose(*["method=sale"])
    check_same_config(tmp_path / "single", single)
    check_same_config(tmp_path / "sale", sale)
    for cfg in (single, sale):
        cfg.auction.weights.objective = "mean"
    check_same_config(tmp_path / "single", single)  # a baseline does not read the auction config
    with pytest.raises(SystemExit, match="auction differ"):
        check_same_config(tmp_path / "sale", sale)


def test_random_arm_matched_to_sale_replaces_the_previous_match(tmp_path, tiny_pool):
    """The match arm follows SALE's latest largest-agent share; a rerun must not keep the old share's arm beside it."""
    from sale.run import run

    sale_dir = tmp_path / "sale"
    sale_dir.mkdir()
    largest, cheaper = tiny_pool.largest.name, tiny_pool.names[0]

    def rerun_with_sale_share(agents):
        pd.DataFrame({"agent": agents}).to_parquet(sale_dir / "results.parquet")
        cfg = compose(
            *[
                "pool=tiny",
                "tasks=mixed",
                "tasks.per_bin=1",
                "tasks.bins=[1]",
                "method=random",
                "method.largest_shares=[0.5]",
                f"method.match_run={sale_dir}",
                f"run.dir={tmp_path / 'random'}",
                f"run.cache={tmp_path / 'calls.sqlite'}",
                "run.figure=false",
            ]
        )
        return pd.read_parquet(run(cfg) / "results.parquet")

    first = rerun_with_sale_share([largest, cheaper, cheaper, cheaper])
    assert sorted(first["arm"].unique()) == ["random:0.25", "random:0.5"]
    second = rerun_with_sale_share([largest, cheaper])
    assert sorted(second["arm"].unique()) == ["random:0.5"]  # the match arm is now 0.5, already an arm
    assert {tuple(r["key"])[0] for r in Journal(tmp_path / "random").records()} == {"random:0.5"}
    kept = first[first["arm"] == "random:0.5"].sort_values("task_id").reset_index(drop=True)
    assert second.sort_values("task_id").reset_index(drop=True)[kept.columns].equals(kept)


def test_demo_puts_sale_beside_the_largest_agent_on_the_same_tasks(tmp_path, tiny_pool):
    run_dir = tmp_path / "demo"
    cmd = [
        sys.executable,
        "-m",
        "sale.demo",
        "pool=tiny",
        "run.limit=3",
        f"run.dir={run_dir}",
        f"run.cache={tmp_path}/calls.sqlite",
    ]
    out = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    ).stdout
    assert "SALE against the largest agent alone" in out and "tiny-qwen2-c alone" in out, out[-3000:]
    sale = pd.read_parquet(run_dir / "results.parquet")
    largest = pd.read_parquet(tmp_path / "demo-largest" / "results.parquet")
    assert sorted(sale["task_id"]) == sorted(largest["task_id"]) and len(sale) == 3
    assert set(largest["agent"]) == {"tiny-qwen2-c"}
    assert (run_dir / "side_by_side.png").stat().st_size > 10_000
    again = subprocess.run(
        cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    ).stdout
    assert "3 done, 0 to run" in again  # a rerun is free


# ------------------------------------------------------------------------------ bad input: one line, nothing left


def refuse(*args, cwd=REPO_ROOT):
    """`python -m sale.run <args>` that must be refused: exit 1, one `error:` line on stderr naming the fix, no
    traceback, nothing on stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "sale.run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error:"), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout and not proc.stdout.strip(), proc.stdout[-2000:]
    return lines[0]


def tree(path):
    """Every path under `path` with its size, to compare before and after a refused command."""
    path = REPO_ROOT / path if not os.path.isabs(path) else path
    return sorted((str(p.relative_to(path)), p.stat().st_size if p.is_file() else -1) for p in path.rglob("*"))


@pytest.fixture
def untouched():
    """Asserts that the test left no sweep directory (runs/multirun/<time>/) and no default run directory (runs/<name>/
    of the commands it runs) behind. Only those: other runs may write elsewhere under runs/ meanwhile."""
    multirun = REPO_ROOT / "runs" / "multirun"
    default = REPO_ROOT / "runs" / str(compose().run.name)

    def state():
        return sorted(p.name for p in multirun.iterdir()) if multirun.exists() else None, default.exists()

    before = state()
    yield
    assert state() == before


def test_a_run_dir_that_is_a_file_is_refused_in_one_line(tmp_path, untouched):
    a_file = tmp_path / "results.txt"
    a_file.write_text("not a run directory")
    line = refuse("pool=tiny", f"run.dir={a_file}")
    assert "is a file" in line and "fix: point run.dir=" in line
    line = refuse("pool=tiny", f"run.dir={a_file}/run")  # a run directory under a file
    assert f"{a_file} is a file" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt"] and a_file.read_text() == "not a run directory"


@pytest.mark.parametrize(
    "override, expected",
    [
        ("method=salee", "unknown method 'salee' (did you mean sale?)"),
        ("pool=cpuu", "unknown pool 'cpuu' (did you mean cpu?)"),
        ("ablation=no_jurry", "unknown ablation 'no_jurry' (did you mean no_jury?)"),
        ("pool=gpt5", "fix: pool=<one of these>"),
    ],
)
def test_an_unknown_group_option_names_the_closest_one(override, expected, tmp_path, untouched):
    line = refuse(override, f"run.dir={tmp_path}/run")
    assert expected in line and "known:" in line
    assert not (tmp_path / "run").exists()


def test_an_unknown_option_in_a_sweep_is_refused_before_hydra_starts(untouched):
    line = refuse("-m", "experiment=ablations", "ablation=no_memory,no_jurry")
    assert "unknown ablation 'no_jurry' (did you mean no_jury?)" in line


def test_a_key_typo_is_refused_in_a_multirun_too(tmp_path, untouched):
    for args in (["-m", "auction.jury.enabld=true,false"], ["auction.jury.enabld=false"]):
        line = refuse(*args, f"run.dir={tmp_path}/run")
        assert "auction.jury.enabld is not a config key" in line and "did you mean auction.jury.enabled?" in line
    assert "(from auction.jury.enabld=true,false)" in refuse("-m", "auction.jury.enabld=true,false")
    assert not (tmp_path / "run").exists()


def test_a_run_refused_for_another_config_leaves_its_directory_as_it_was(untouched):
    committed = DATA_DIR / "runs" / "ablation-no_memory-cpu"
    before = tree(committed)
    line = refuse("experiment=ablations", "ablation=no_memory", "auction.memory.k=5")
    assert "holds a run with a different config (auction differ)" in line and "run.name=" in line
    line = refuse("-m", "experiment=ablations", "auction.memory.k=5")  # every point is checked before any runs
    assert "the sweep point ablation=full" in line and "different config" in line
    assert tree(committed) == before  # no .hydra/, no run.log


def test_sweep_points_that_would_share_a_run_directory_are_refused(untouched):
    line = refuse("-m", "method=sale", "auction.jury.self_evaluation=true,false")
    assert "would both write runs/sale-cpu-mixed-test" in line
    assert "'run.name=sale-cpu-mixed-test-${auction.jury.self_evaluation}'" in line
    # SALE's task orders as separate jobs share one run directory on purpose: not a collision.
    from sale.run import preflight

    assert preflight(["-m", "experiment=main", "method=sale", "run.only_order=0,1,2,3,4"]) is None


def test_a_run_refused_once_hydra_started_takes_back_what_hydra_wrote(tmp_path, tiny_pool, untouched):
    """A refusal inside the run (here run.concurrency=0, found after Hydra made the run directory and wrote .hydra/
    and its log there) removes a new directory, and leaves an existing one as it was."""
    line = refuse("pool=tiny", "run.concurrency=0", f"run.dir={tmp_path}/new/run", f"run.cache={tmp_path}/c.sqlite")
    assert "run.concurrency must be a positive integer" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    finished = tmp_path / "finished"
    out = sale_run(finished, "method=single", "method.agents=smallest", "run.limit=1").communicate(timeout=300)[0]
    assert "pass@1" in out, out[-2000:]
    before = tree(finished)
    hydra_record = (finished / ".hydra" / "overrides.yaml").read_text()
    refuse(
        "pool=tiny",
        "tasks=mixed",
        "tasks.per_bin=1",
        f"run.dir={finished}",
        f"run.cache={finished}/calls.sqlite",
        "run.figure=false",
        "method=single",
        "method.agents=smallest",
        "run.limit=1",
        "run.concurrency=0",
    )
    assert tree(finished) == before and (finished / ".hydra" / "overrides.yaml").read_text() == hydra_record


def test_help_lists_the_groups_and_the_three_purposes_and_no_config():
    out = subprocess.run(
        [sys.executable, "-m", "sale.run", "--help"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    ).stdout
    from sale.config import GROUPS, options

    listed = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()[0] in GROUPS}
    assert sorted(listed) == sorted(GROUPS) and "prompts" not in out.split("Groups")[1].split("Reproduce")[0]
    for group in GROUPS:
        section = out.split(f"  {group} ", 1)[1].split("\n  ", 1)[0]  # its line and any continuation
        assert all(option in out.split(f"  {group} ", 1)[1] for option in options(group)), (group, section)
    for purpose in ("Reproduce the paper", "Ablate:", "Teach:", "make reproduce"):
        assert purpose in out
    assert "experiment=ablations ablation=no_memory" in out and "price_per_b_params" not in out  # no config dump
    cfg = subprocess.run(
        [sys.executable, "-m", "sale.run", "--cfg", "job"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    ).stdout
    assert "price_per_b_params" in cfg

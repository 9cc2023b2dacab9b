"""The one way to read the project's config (conf/): compose it as `python -m sale.run` would, list a group's
options, and read one pool file. Scripts, notebooks and tests use these, so a renamed key or group breaks them all
at once, with the same message.

    cfg = compose("experiment=demo", "run.limit=2")     # what `python -m sale.run experiment=demo run.limit=2` runs
    pool_config("cpu")                                   # conf/pool/cpu.yaml as a dict (sale.llm.load_pool builds it)
    options("method")                                    # ['cascade', 'knn', 'mlc', ...]
    sweep("-m"-less overrides)                           # a multirun's points, as `python -m sale.run -m` runs them
"""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from sale import CONF_DIR

# Config groups a user picks from on the command line (conf/<group>/<option>.yaml); prompts are composed with the
# agents and the auction, not chosen.
GROUPS = ("pool", "tasks", "method", "auction", "experiment", "ablation")


class ConfigError(ValueError):
    """A config that names something that does not exist; the message says what does. `group`: the config group
    whose option it named, where it is one."""

    def __init__(self, message: str, group: str | None = None):
        super().__init__(message)
        self.group = group


def options(group: str) -> list[str]:
    """The options of a config group: the names of conf/<group>/*.yaml."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def closest(name: str, known: list[str]) -> str:
    """' (did you mean X?)' for the known name closest to `name`, or ''."""
    match = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    return f" (did you mean {match[0]}?)" if match else ""


def check_option(group: str, name: str) -> None:
    """Raise ConfigError, naming the closest option and every known one, when conf/<group>/<name>.yaml is missing."""
    known = options(group)
    if name not in known:
        raise ConfigError(f"unknown {group} {name!r}{closest(str(name), known)}; known: {', '.join(known)}", group)


def check_group_options(overrides) -> None:
    """Raise ConfigError for the first override that picks a group option that does not exist (method=salee, or
    one value of a sweep: ablation=no_jury,no_jurry)."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key in GROUPS and value and value != "null":
            for name in value.split(","):
                check_option(key, name.strip())


def groups_help(indent: int = 2) -> str:
    """One line per group a user picks from, with its options: what `python -m sale.run --help` lists (the help
    template in conf/config.yaml reads it through the ${sale_groups:} resolver, so it never goes stale)."""
    import textwrap

    width = max(len(g) for g in GROUPS)
    lines = []
    for g in GROUPS:
        head = f"{' ' * indent}{g:<{width}}  "
        lines += textwrap.wrap(
            " | ".join(options(g)), 110, initial_indent=head, subsequent_indent=" " * len(head), break_on_hyphens=False
        )
    return "\n".join(lines)


if not OmegaConf.has_resolver("sale_groups"):
    OmegaConf.register_new_resolver("sale_groups", lambda: groups_help(), use_cache=False)


def pool_config(name: str) -> dict:
    """conf/pool/<name>.yaml as a plain dict, after checking the pool exists."""
    check_option("pool", name)
    return yaml.safe_load((CONF_DIR / "pool" / f"{name}.yaml").read_text())


def compose(*overrides: str, return_hydra_config: bool = False, config_dir: str | Path = CONF_DIR) -> DictConfig:
    """The config `python -m sale.run <overrides>` would run with (Hydra's compose API, no run directory made).
    A bad group option raises ConfigError with the closest option. return_hydra_config adds the `hydra` node
    (launcher, sweeper) as `--cfg hydra` shows it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    check_group_options(overrides)
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its search path is this conf dir
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return hydra_compose("config", overrides=list(overrides), return_hydra_config=return_hydra_config)


def sweep(*overrides: str) -> list[list[str]]:
    """The points of `python -m sale.run -m <overrides>`, each as the override list of one job, in Hydra's order:
    the experiment's own sweep (hydra.sweeper.params, e.g. experiment=ablations sweeps ablation) first, then the
    command line, whose comma-separated values replace or extend it. A command with no sweep is one point."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    fixed = [str(o.input_line) for o in parser.parse_overrides(list(overrides)) if not o.is_sweep_override()]
    params = compose(*fixed, return_hydra_config=True).hydra.sweeper.get("params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()] + list(overrides)
    return BasicSweeper.split_arguments(parser.parse_overrides(arguments), max_batch_size=None)[0]

"""One figure style for the notebooks' figures.

Units are the same in every figure: pass@1 in percent (`pct`, `pct_axis`), cost in $ per task with SI prefixes
(`usd_axis`: 20 µ$, 1.5 m$) or relative to a reference run (`rel_axis`: 0.5×), and no axis ever carries an offset
or a ×10ⁿ multiplier. Colours come from the Okabe–Ito palette (safe for the common colour-vision deficiencies),
and every agent, method family, ablation arm and domain has its own colour *and* marker, so a figure still reads in
grey. Figures use constrained layout and are sized for a paper's column (`COLUMN`) or page (`PAGE`) width at the
font sizes a paper uses; legends go outside the data (`legend_outside`). Every interval says what it is: `CI_TASKS`,
`CI_PAIRED` and `STD_ORDERS` are the words for legends and captions, and `interval_handle` puts them in a legend.

    from sale.analysis import style
    style.use()
    fig, ax = style.figure(width="column")
    style.interval(ax, x, style.pct(p), style.pct(lo), style.pct(hi), **style.METHODS["sale"])
    style.pct_axis(ax)
    style.save(fig, FIGURES / "name.png")
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, MultipleLocator, NullFormatter

# Okabe & Ito (2008), "Color Universal Design": distinguishable under protanopia, deuteranopia and tritanopia.
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky blue": "#56B4E9",
    "bluish green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish purple": "#CC79A7",
}
GREY = "#7F7F7F"
LIGHT_GREY = "#BBBBBB"
PALETTE = [OKABE_ITO[c] for c in ("blue", "orange", "bluish green", "vermillion", "reddish purple", "sky blue")]

COLUMN = 3.4  # inches: one column of a two-column paper
PAGE = 7.0  # inches: the full text width

CI_TASKS = "95% bootstrap CI over tasks"
CI_PAIRED = "paired bootstrap 95% CI over tasks"
STD_ORDERS = "±1 std over task orders"

# Agents by rank in the pool (cheapest first); the largest agent is always the last.
_AGENT_COLOURS = [OKABE_ITO[c] for c in ("orange", "bluish green", "blue", "reddish purple", "sky blue")]
_AGENT_MARKERS = ["o", "s", "^", "D", "v"]

# Method families on the cost–quality plane: each its own colour, marker and line.
METHODS: dict[str, dict[str, Any]] = {
    "single": dict(color=OKABE_ITO["black"], marker="o", label="agent alone"),
    "oracle": dict(color=OKABE_ITO["bluish green"], marker="*", markersize=11, label="oracle (upper bound)"),
    "cascade": dict(color=GREY, marker="D", label="cascade"),
    "sale": dict(color=OKABE_ITO["vermillion"], marker="h", markersize=9, label="SALE"),
    "knn:theta": dict(color=OKABE_ITO["blue"], marker="s", linestyle="-", label="kNN router, threshold θ"),
    "knn:lambda": dict(color=OKABE_ITO["sky blue"], marker="P", linestyle="--", label="kNN router, trade-off λ"),
    "mlc:theta": dict(color=OKABE_ITO["reddish purple"], marker="^", linestyle="-", label="MLC router, threshold θ"),
    "mlc:lambda": dict(color=OKABE_ITO["orange"], marker="v", linestyle="--", label="MLC router, trade-off λ"),
    "random": dict(color=LIGHT_GREY, marker="X", linestyle=":", label="random routing"),
    "hull": dict(color=GREY, linestyle=(0, (1, 2)), marker="", label="hull of the agents alone"),
}

# Ablation arms: what each switch changes (conf/ablation/<arm>.yaml), grouped by the part of the auction it touches.
ARMS = {
    "full": "full SALE",
    "no_memory": "no memory in refinement",
    "no_refinement": "no refinement",
    "k1": "memory retrieves k = 1 (not 3)",
    "outcome_label": "memory labels = execution outcome",
    "no_jury": "no jury (entropy only)",
    "no_self_evaluation": "no self-evaluation",
    "largest_juror": "largest agent the only juror",
    "no_entropy": "no entropy term",
    "short_bids": "bids capped at 64 tokens (not 128)",
    "mean_objective": "weights: mean-loss fit",
    "spec_minmax": "weights: min-max over all train tasks",
    "overhead_fit": "weights: overhead-aware fit",
}
ARM_GROUPS = {
    "memory and refinement": ("no_memory", "no_refinement", "k1", "outcome_label"),
    "jury": ("no_jury", "no_self_evaluation", "largest_juror"),
    "bid": ("no_entropy", "short_bids"),
    "weight fit": ("mean_objective", "spec_minmax", "overhead_fit"),
}
GROUPS: dict[str, dict[str, Any]] = {
    "memory and refinement": dict(color=OKABE_ITO["blue"], marker="o"),
    "jury": dict(color=OKABE_ITO["reddish purple"], marker="^"),
    "bid": dict(color=OKABE_ITO["orange"], marker="s"),
    "weight fit": dict(color=OKABE_ITO["sky blue"], marker="D"),
    "other": dict(color=GREY, marker="X"),
}

DOMAINS: dict[str, dict[str, Any]] = {
    "coding": dict(color=OKABE_ITO["blue"], marker="o", linestyle="-"),
    "search": dict(color=OKABE_ITO["orange"], marker="s", linestyle="--"),
    "all": dict(color=OKABE_ITO["black"], marker="^", linestyle="-."),
}
# A reference run drawn as a line across a panel (the largest agent alone, full SALE, chance).
REFERENCE = dict(color=OKABE_ITO["black"], linewidth=0.8)


def use() -> None:
    """Apply the style to every figure drawn after it (matplotlib rcParams)."""
    mpl.rcParams.update(
        {
            "figure.constrained_layout.use": True,
            "figure.dpi": 130,
            "savefig.dpi": 300,
            "savefig.bbox": "tight",
            "savefig.pad_inches": 0.03,
            "font.size": 8,
            "axes.titlesize": 8.5,
            "axes.labelsize": 8,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "legend.fontsize": 7,
            "legend.title_fontsize": 7,
            "legend.frameon": False,
            "axes.formatter.useoffset": False,  # never "1e-5" above an axis
            "axes.formatter.limits": (-9, 9),  # never scientific notation on a linear axis
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "grid.linewidth": 0.5,
            "axes.prop_cycle": cycler(color=PALETTE),
            "lines.linewidth": 1.3,
            "lines.markersize": 5,
            "errorbar.capsize": 2,
            "hatch.linewidth": 0.6,
        }
    )


def figure(ncols: int = 1, nrows: int = 1, width: str | float = "column", height: float | None = None, **kwargs):
    """A constrained-layout figure `width` wide ('column', 'page' or inches); height defaults to 0.75 × the
    width per row of a one-column panel. Returns (fig, axes) as plt.subplots does."""
    if isinstance(width, str):
        if width not in ("column", "page"):
            raise ValueError(f"width is 'column', 'page' or inches, not {width!r}")
        w = COLUMN if width == "column" else PAGE
    else:
        w = float(width)
    h = height if height is not None else min(2.6 * nrows, 0.75 * w / ncols * nrows + 0.3)
    return plt.subplots(nrows, ncols, figsize=(w, h), layout="constrained", **kwargs)


def pct(x):
    """A fraction (0.523) as percent (52.3), for arrays, Series and scalars alike."""
    return 100 * np.asarray(x, dtype=float) if not np.isscalar(x) else 100 * float(x)


def _axis(ax, which: str):
    return ax.yaxis if which == "y" else ax.xaxis


def pct_axis(ax, which: str = "y", label: str = "pass@1 (%)", lim: tuple[float, float] | None = (0, 100)) -> None:
    """An axis of values already in percent (`pct`): label, limits, ticks every 20 (10 when the range is short)."""
    axis = _axis(ax, which)
    axis.set_label_text(label)
    if lim is not None:
        (ax.set_ylim if which == "y" else ax.set_xlim)(*lim)
        span = lim[1] - lim[0]
        axis.set_major_locator(MultipleLocator(20 if span > 60 else 10 if span > 25 else 5))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def usd_axis(ax, which: str = "x", label: str = "cost per task", log: bool = True) -> None:
    """An axis of $ amounts with SI prefixes (5 µ$, 20 µ$, 1.5 m$), log-scaled by default."""
    axis = _axis(ax, which)
    if log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(EngFormatter(unit="$", sep=" ", places=None))
    axis.set_label_text(label + (" (log scale)" if log else ""))


def rel_axis(ax, which: str = "x", reference: str = "the largest agent alone", log: bool = False) -> None:
    """An axis of ratios to a reference run: '0.5×', '1×', '2×'."""
    axis = _axis(ax, which)
    if log:
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
    axis.set_label_text(f"cost relative to {reference}")


def pp_axis(ax, which: str = "x", label: str = "Δ pass@1 (percentage points)") -> None:
    """An axis of differences of pass@1 in percentage points, signed (+10, 0, −10)."""
    axis = _axis(ax, which)
    axis.set_major_formatter(FuncFormatter(lambda v, _: "0" if abs(v) < 1e-9 else f"{v:+g}".replace("-", "−")))
    axis.set_label_text(label)


def short_agent(name: str) -> str:
    """'qwen2.5-coder-1.5b' -> '1.5B', 'smollm2-135m' -> '135M', 'qwen3-32b' -> '32B'; the name itself otherwise."""
    m = re.search(r"(\d+(?:\.\d+)?)([bm])$", name.lower())
    return f"{m.group(1)}{m.group(2).upper()}" if m else name


def agent_styles(agents: list[str]) -> dict[str, dict[str, Any]]:
    """A colour, a marker and a label per agent, by its rank in the pool (cheapest first: the last is the largest)."""
    if len(agents) > len(_AGENT_COLOURS):
        raise ValueError(f"the style has {len(_AGENT_COLOURS)} agent colours, the pool has {len(agents)} agents")
    return {
        a: dict(color=_AGENT_COLOURS[i], marker=_AGENT_MARKERS[i], label=a + (" (largest)" if a == agents[-1] else ""))
        for i, a in enumerate(agents)
    }


def arm_label(arm: str) -> str:
    """A readable label for an ablation arm (conf/ablation/<arm>.yaml)."""
    return ARMS.get(arm, arm.replace("_", " "))


def arm_group(arm: str) -> str:
    return next((g for g, arms in ARM_GROUPS.items() if arm in arms), "other")


def interval(
    ax,
    x,
    y,
    lo=None,
    hi=None,
    err=None,
    horizontal: bool = False,
    **style: Any,
):
    """Points with intervals: [lo, hi] (absolute bounds, e.g. a bootstrap CI) or ±err (e.g. a std), on y (or on x
    when `horizontal`). Missing bounds draw the point alone. The legend label belongs to the caller: pair it with
    what the interval is (CI_TASKS, CI_PAIRED, STD_ORDERS)."""
    x, y = np.atleast_1d(np.asarray(x, dtype=float)), np.atleast_1d(np.asarray(y, dtype=float))
    centre = x if horizontal else y
    if lo is not None and hi is not None:
        lo, hi = np.atleast_1d(np.asarray(lo, dtype=float)), np.atleast_1d(np.asarray(hi, dtype=float))
        bars = np.vstack([np.nan_to_num(centre - lo), np.nan_to_num(hi - centre)])
    elif err is not None:
        bars = np.nan_to_num(np.atleast_1d(np.asarray(err, dtype=float)))
    else:
        bars = None
    style = {"linestyle": "none", "capsize": 2, "elinewidth": 1, **style}
    if horizontal:
        return ax.errorbar(x, y, xerr=bars, **style)
    return ax.errorbar(x, y, yerr=bars, **style)


def interval_handle(label: str, color: str = GREY, horizontal: bool = False) -> Line2D:
    """A legend entry that says what the error bars mean, e.g. interval_handle(f'bars: {CI_TASKS}')."""
    return Line2D([], [], color=color, marker="_" if horizontal else "|", markersize=9, linestyle="none", label=label)


def legend_outside(
    where, handles=None, labels=None, loc: str = "below", ncol: int | None = None, title: str | None = None, **kw
):
    """A legend outside the data: below the figure (or an axes) or to its right. `where` is a Figure or an Axes;
    the handles default to its own artists' (deduplicated by label)."""
    if handles is None:
        axes = where.axes if isinstance(where, mpl.figure.Figure) else [where]
        seen: dict[str, Any] = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if not lab.startswith("_"):
                    seen.setdefault(lab, h)
        handles, labels = list(seen.values()), list(seen)
    elif labels is None:
        labels = [h.get_label() for h in handles]
    if not handles:
        return None
    if loc == "right":
        kw = dict(loc="outside right upper" if isinstance(where, mpl.figure.Figure) else "upper left", **kw)
        if not isinstance(where, mpl.figure.Figure):
            kw.setdefault("bbox_to_anchor", (1.02, 1.0))
        return where.legend(handles, labels, ncol=ncol or 1, title=title, **kw)
    kw = dict(loc="outside lower center" if isinstance(where, mpl.figure.Figure) else "upper center", **kw)
    if not isinstance(where, mpl.figure.Figure):
        kw.setdefault("bbox_to_anchor", (0.5, -0.22))
    return where.legend(handles, labels, ncol=ncol or min(len(handles), 3), title=title, **kw)


def save(fig, path: str | Path) -> Path:
    """Save a figure (PNG at 300 dpi, tight bounding box so no label is cut) and return its path."""
    path = Path(path)
    fig.savefig(path)
    return path

"""The notebooks' figure style: one unit per quantity, no axis offsets, distinct colour-blind-safe styles, labels
and legends that stay inside the saved image, and intervals drawn where they are said to be."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from sale.analysis import style  # noqa: E402


@pytest.fixture(autouse=True)
def styled():
    with matplotlib.rc_context():
        style.use()
        yield
        plt.close("all")


def tick_texts(fig, axis):
    fig.canvas.draw()
    return [t.get_text() for t in axis.get_ticklabels() if t.get_text()]


def test_dollars_get_si_prefixes_and_no_offset():
    fig, ax = style.figure()
    ax.plot([6e-6, 2e-5, 8e-5], [10, 30, 50])
    style.usd_axis(ax)
    ax.plot([1.01e-5, 1.02e-5], [0, 1])  # a narrow linear range would otherwise get "+1e-5" above it
    ax2 = fig.add_subplot(2, 1, 2)
    ax2.plot([1.01e-5, 1.02e-5], [4.001e-5, 4.002e-5])
    style.usd_axis(ax2, which="y", log=False)
    labels = tick_texts(fig, ax.xaxis)
    assert labels and all(lab.endswith("µ$") for lab in labels)
    assert not ax2.yaxis.get_offset_text().get_text() and not ax2.xaxis.get_offset_text().get_text()
    assert all("e" not in lab for lab in tick_texts(fig, ax2.yaxis))


def test_percent_and_ratio_axes():
    assert style.pct(0.523) == pytest.approx(52.3)
    np.testing.assert_allclose(style.pct(np.array([0.1, 1.0])), [10, 100])
    fig, (a1, a2, a3) = style.figure(3, width="page")
    a1.plot([0, 1], style.pct([0.2, 0.9]))
    style.pct_axis(a1)
    assert a1.get_ylabel() == "pass@1 (%)" and a1.get_ylim() == (0, 100)
    a2.plot([0.3, 2.0], [0, 1])
    style.rel_axis(a2, reference="full SALE", log=True)
    assert any(t.endswith("×") for t in tick_texts(fig, a2.xaxis)) and "full SALE" in a2.get_xlabel()
    a3.plot([-20, 10], [0, 1])
    style.pp_axis(a3)
    assert {"−20", "0", "+10"} <= set(tick_texts(fig, a3.xaxis))


def test_every_family_agent_and_group_has_its_own_colour_and_marker():
    for styles in (
        [style.METHODS[k] for k in style.METHODS if k != "hull"],
        list(style.agent_styles(["a-135m", "b-0.5b", "c-1.5b", "d-7b"]).values()),
        list(style.GROUPS.values()),
        list(style.DOMAINS.values()),
    ):
        colours = [s["color"] for s in styles]
        markers = [s["marker"] for s in styles]
        assert len(set(colours)) == len(colours) and len(set(markers)) == len(markers)
    okabe_ito = set(style.OKABE_ITO.values()) | {style.GREY, style.LIGHT_GREY}
    assert all(s["color"] in okabe_ito for s in [*style.METHODS.values(), *style.GROUPS.values()])
    assert style.agent_styles(["x-1b", "y-2b"])["y-2b"]["label"].endswith("(largest)")
    with pytest.raises(ValueError):
        style.agent_styles([f"m{i}" for i in range(9)])


def test_every_ablation_arm_has_a_label_and_a_group():
    from sale.analysis.reading import ABLATIONS

    for arm in ABLATIONS:
        assert arm in style.ARMS and "_" not in style.arm_label(arm)
        assert arm == "full" or style.arm_group(arm) != "other"
    assert style.short_agent("qwen2.5-coder-1.5b") == "1.5B" and style.short_agent("smollm2-135m") == "135M"


def test_intervals_are_drawn_where_they_are_said_to_be():
    fig, ax = style.figure()
    bars = style.interval(ax, [1, 2], [50, 60], lo=[40, 55], hi=[70, 61])
    segments = bars.lines[2][0].get_segments()
    np.testing.assert_allclose([s[:, 1] for s in segments], [[40, 70], [55, 61]])
    sideways = style.interval(ax, [5], [1], err=[2], horizontal=True)
    np.testing.assert_allclose(sideways.lines[2][0].get_segments()[0][:, 0], [3, 7])
    assert style.interval_handle(f"bars: {style.CI_TASKS}").get_label() == "bars: 95% bootstrap CI over tasks"


def test_labels_and_outside_legends_stay_inside_the_saved_image(tmp_path):
    fig, axes = style.figure(2, width="column")
    for ax in axes:
        ax.plot([1, 2, 3], [10, 50, 90], **{**style.METHODS["sale"], "label": "a long legend label for the first"})
        ax.plot([1, 2, 3], [90, 50, 10], **{**style.METHODS["knn:theta"], "label": "a second, equally long label"})
        ax.set(title="a title long enough to reach its neighbour", xlabel="complexity bin", ylabel="pass@1 (%)")
    legend = style.legend_outside(fig, ncol=1)
    path = style.save(fig, tmp_path / "f.png")
    renderer = fig.canvas.get_renderer()
    legend_box = legend.get_window_extent(renderer)
    for ax in axes:  # the legend sits outside every axes
        assert not legend_box.overlaps(ax.get_window_extent(renderer))
    with Image.open(path) as im:
        width, height = im.size
    assert width < 1.6 * style.COLUMN * 300  # readable at a column's width: not stretched to fit the labels
    pixels = np.asarray(Image.open(path).convert("L"))
    assert (pixels[:2] == 255).all() and (pixels[-2:] == 255).all()  # a white margin: nothing cut at the edges
    assert (pixels[:, :2] == 255).all() and (pixels[:, -2:] == 255).all()

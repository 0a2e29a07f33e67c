"""The statistics figures of ``relviz batch --stats`` at the journal ``page`` preset: the preset's width, a
height from the content of at most 9.5 in, one type scale, and the layout rules every exported figure keeps
(text inside the figure, 5–12 pt, unclipped, no overlaps) — on the bundled demos and on larger models."""

from __future__ import annotations

import re

import numpy as np
import pytest
from figure_layout import demo_traces_in, drawn_texts, text_problems
from test_batch_stats import detr_trace, relation_trace

from relviz.batch import stats
from relviz.batch.figures import PRESET, figures, write_figures
from relviz.render.style import style

PAGE = style(PRESET)
#: the sizes of the preset's type scale; every text of a statistics figure is one of them
TYPE_SCALE = {PAGE.small, PAGE.base, PAGE.title, PAGE.heading}
#: the demos whose statistics have figures (the image non-local model and the clip model draw different panels)
DEMO_KEYS = ("relation", "detr", "regionfeat", "lrnet", "nonlocal", "clip")


@pytest.fixture(scope="module")
def demo_summaries(tmp_path_factory) -> dict[str, dict]:
    """The statistics of each bundled demo over its bundled input, as ``relviz batch --stats`` gathers them."""
    traces = demo_traces_in(tmp_path_factory.mktemp("stats-traces"), DEMO_KEYS)
    out = {}
    for key, trace in traces.items():
        acc = stats.Accumulator()
        acc.add(trace)
        out[key] = acc.summary()
    return out


def check_figure(name: str, fig) -> None:
    width, height = fig.get_size_inches()
    assert width == pytest.approx(PAGE.width), name
    assert 0.8 <= height <= PAGE.max_height + 1e-6, name
    assert text_problems(fig) == [], name
    sizes = {round(text.get_fontsize(), 2) for text, _ in drawn_texts(fig)}
    assert sizes <= TYPE_SCALE, f"{name}: text at {sorted(sizes - TYPE_SCALE)} pt, off the type scale"


@pytest.mark.parametrize("key", DEMO_KEYS)
def test_demo_statistics_figures_keep_the_page_layout(demo_summaries, key):
    drawn = figures(demo_summaries[key])
    expected = {"relation": {"relation-fc1-class-pairs", "relation-fc1-geometry", "relation-fc2-class-pairs",
                             "relation-fc2-geometry"},
                "detr": {"detr-attention"}, "regionfeat": {"region-parts"}, "lrnet": {"lrnet-kl"},
                "nonlocal": {"nonlocal-attention"}, "clip": {"nonlocal-attention"}}[key]
    assert {name for name, _ in drawn} == expected
    for name, fig in drawn:
        check_figure(name, fig)


def test_an_image_model_has_no_distance_in_time_and_a_clip_model_has(demo_summaries):
    def titles(key):
        (_, fig), = figures(demo_summaries[key])
        return [ax.get_title() for ax in fig.axes]

    assert titles("nonlocal") == ["distance in space", "entropy"]
    assert titles("clip") == ["distance in space", "distance in time", "entropy"]


def test_class_pair_panels_share_one_colour_range_and_print_their_values(rng):
    acc = stats.Accumulator()
    for _ in range(4):
        acc.add(relation_trace(rng, heads=3))
    summary = acc.summary()
    (name, fig), _ = figures(summary)
    assert name == "relation-fc1-class-pairs"
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 4  # the mean of heads and three heads
    term = summary["relation"]["modules"]["fc1"]["weight"]["by_class_pair"]
    top = np.nanmax(np.array(term["per_head"], dtype=float))
    assert [(im.norm.vmin, im.norm.vmax) for im in images] == [(0.0, pytest.approx(top))] * 4
    mean = np.array(term["mean"], dtype=float)
    printed = [t.get_text() for t in fig.axes[0].texts]
    assert printed == [f"{v:.3f}" for v in mean[np.isfinite(mean)]]


def test_many_heads_classes_and_layers_stay_on_one_page(rng, tmp_path):
    labels = [f"class {i}" for i in range(10)]
    acc = stats.Accumulator()
    for _ in range(3):
        t = relation_trace(rng, rows=tuple(range(12)), proposals=14, heads=8)
        t.meta["labels"] = labels
        t["detections/labels"] = rng.integers(0, len(labels), size=12)
        acc.add(t)
    for name, fig in figures(acc.summary()):
        check_figure(name, fig)

    acc = stats.Accumulator()
    acc.add(detr_trace(rng, layers=6, heads=8))
    summary = acc.summary()
    # the decoder's parts read like the encoder's: three rows of six layers by eight heads
    summary["detr"]["cross"] = summary["detr"]["self"] = summary["detr"]["encoder"]
    (name, fig), = figures(summary)
    check_figure(name, fig)
    (path,) = write_figures(summary, tmp_path)
    box = re.search(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", path.read_bytes())
    assert box is not None
    assert float(box.group(1)) / 72 == pytest.approx(PAGE.width, abs=0.01)
    assert float(box.group(2)) / 72 <= PAGE.max_height + 0.01


def test_statistics_figures_are_saved_in_the_preset_style(rng, tmp_path):
    acc = stats.Accumulator()
    acc.add(relation_trace(rng))
    for name, fig in figures(acc.summary()):
        assert getattr(fig, "relviz_style", None) == PAGE, name

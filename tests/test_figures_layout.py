"""Every view at both journal presets, on the bundled demo models and inputs: the size the preset gives,
every text 5–12 pt, inside the figure, unclipped and overlapping no other text (matplotlib's own text
extents after drawing)."""

from __future__ import annotations

import numpy as np
import pytest
from figure_layout import demo_traces_in, text_problems

from relviz.core.trace import Trace
from relviz.render.style import PRESETS
from relviz.render.views import ViewOptions, render_view, views


@pytest.fixture(scope="session")
def demo_traces(tmp_path_factory) -> dict[str, Trace]:
    return demo_traces_in(tmp_path_factory.mktemp("demo-traces"))


#: (view, trace, options): every view's default, and the variants that change its layout
CASES = [
    ("detections", "detr", {}),
    ("detections", "relation", {"object": 2}),
    ("detections", "regionfeat", {}),
    ("encoder-attention", "detr", {}),
    ("encoder-attention", "detr", {"extra": {"boxes": "show"}, "shared_range": False}),
    ("decoder-attention", "detr", {}),
    ("decoder-attention", "detr", {"objects": [0, 1, 2]}),
    ("decoder-objects", "detr", {}),
    ("decoder-objects", "detr", {"objects": [3, 1], "head": "2"}),
    ("relations", "relation", {}),
    ("relations", "relation", {"object": 1, "head": "2", "extra": {"among": "all"}}),
    ("relations", "relation", {"module": "fc2", "term": "geometry", "extra": {"direction": "out"}}),
    ("relation-matrix", "relation", {}),
    ("relation-matrix", "relation", {"extra": {"rows": "proposals"}}),
    ("relation-pairs", "relation", {}),
    ("relation-pairs", "relation", {"objects": [0, 1, 2, 3, 4, 5], "extra": {"partners": 3}}),
    ("geometry", "relation", {}),
    ("geometry", "relation", {"head": "1"}),
    ("region-parts", "regionfeat", {}),
    ("region-parts", "regionfeat", {"term": "geometry", "extra": {"part": 5}}),
    ("local-relation", "lrnet", {}),
    ("local-relation", "lrnet", {"point": (25.0, 6.0), "layer": "res2.0", "head": "3"}),
    ("geometry-priors", "lrnet", {}),
    ("geometry-priors", "lrnet", {"term": "geometry", "extra": {"range": "shared"}}),
    ("nonlocal", "nonlocal", {}),
    ("nonlocal", "clip", {"point": (20.0, 30.0), "frame": 3, "top_k": 8}),
]


def test_every_view_is_checked():
    assert {view for view, _, _ in CASES} == set(views())


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize(("view", "which", "options"), CASES, ids=[f"{v}-{w}-{i}" for i, (v, w, _) in enumerate(CASES)])
def test_text_is_legible_whole_and_apart(demo_traces, view, which, options, preset):
    fig = render_view(demo_traces[which], view, ViewOptions(preset=preset, **options))
    width, height = fig.get_size_inches()
    assert width == pytest.approx(PRESETS[preset].width)
    assert 0.5 < height <= PRESETS[preset].max_height + 1e-6
    assert text_problems(fig) == []


def test_width_and_height_override_the_preset_and_keep_its_type(demo_traces):
    fig = render_view(demo_traces["relation"], "relations", ViewOptions(preset="column", width=5.0, height=4.0))
    assert tuple(fig.get_size_inches()) == pytest.approx((5.0, 4.0))
    assert text_problems(fig) == []


def test_images_fill_the_width_without_empty_bands(demo_traces):
    """The height is what the content needs: the image spans the figure's width, with no band of empty
    height above or below it beyond the title's."""
    trace = demo_traces["detr"]
    for preset in PRESETS.values():
        fig = render_view(trace, "detections", ViewOptions(preset=preset.name))
        fig.draw_without_rendering()
        ax = fig.axes[0]
        drawn = ax.get_position()
        w, h = trace.image_size
        image_height = drawn.width * fig.get_figwidth() * h / w
        assert drawn.width * fig.get_figwidth() > 0.9 * preset.width
        assert fig.get_figheight() - image_height < 0.45  # the title and the margins only


def test_crowded_captions_are_thinned_not_stacked(demo_traces):
    """With every detection captioned on a column-wide image, the captions drawn overlap nothing, and those
    without room are left out (their boxes stay)."""
    trace = demo_traces["detr"]
    fig = render_view(trace, "detections", ViewOptions(preset="column"))
    assert text_problems(fig) == []
    ax = fig.axes[0]
    captions = [t for t in ax.texts if t.get_text().startswith("d")]
    assert len(captions) == len(trace["detections/boxes"])
    drawn = [t for t in captions if t.get_visible()]
    assert 0 < len(drawn) <= len(captions)
    assert len(ax.patches) >= len(captions)  # every box is drawn, captioned or not


def test_every_text_uses_the_presets_type_scale(demo_traces):
    """One base size: the sizes printed are the preset's steps, the same for every view."""
    from figure_layout import drawn_texts

    for name, preset in PRESETS.items():
        from relviz.render.style import style

        steps = {style(name).small, style(name).base, style(name).title, style(name).heading}
        for view, which, options in CASES[::3]:
            fig = render_view(demo_traces[which], view, ViewOptions(preset=name, **options))
            sizes = {round(t.get_fontsize(), 3) for t, _ in drawn_texts(fig)}
            assert sizes <= {round(s, 3) for s in steps}, (view, preset.name, sizes)


def test_recipes_regenerate_identical_files_at_both_presets(demo_traces, tmp_path):
    from relviz import __version__
    from relviz.export import export_figure, make_recipe, replay_recipe

    trace_path = tmp_path / "relation.npz"
    demo_traces["relation"].save(trace_path)
    for preset in PRESETS:
        for suffix in (".png", ".pdf"):
            out = tmp_path / f"rel-{preset}{suffix}"
            recipe = make_recipe({"relviz": __version__, "view": "relation-pairs", "trace": str(trace_path),
                                  "output": str(out), "dpi": 150, "options": {"preset": preset}})
            figure, recipe_file = export_figure(recipe)
            first = figure.read_bytes()
            assert '"preset": "' + preset + '"' in recipe_file.read_text()
            replay_recipe(recipe_file)
            assert figure.read_bytes() == first
            if suffix == ".png":
                from PIL import Image

                with Image.open(figure) as im:
                    assert im.size[0] == round(PRESETS[preset].width * 150)


def test_page_is_the_default_preset(demo_traces):
    fig = render_view(demo_traces["nonlocal"], "nonlocal", ViewOptions())
    assert fig.get_figwidth() == pytest.approx(7.16)
    assert ViewOptions().preset == "page"


def test_an_unknown_preset_is_one_sentence(demo_traces):
    from relviz.core.errors import BadInputError

    with pytest.raises(BadInputError, match="not a figure preset; choose column"):
        render_view(demo_traces["nonlocal"], "nonlocal", ViewOptions(preset="poster"))
    assert np.isfinite(PRESETS["column"].width)

"""What the panels show, against the trace's numbers computed naively (no Qt needed)."""

import numpy as np
import pytest

from relviz.app.synthetic import synthetic_trace
from relviz.core.grid import Grid
from relviz.core.trace import Trace
from relviz.views import maps


@pytest.fixture
def trace():
    return synthetic_trace()


def naive_softmax_row(q, k, scale):
    logits = np.array([scale * float(np.dot(q, kk)) for kk in k])
    e = np.exp(logits - logits.max())
    return e / e.sum()


def test_sources_follow_the_tensor_names(trace):
    keys = [s.key for s in maps.sources(trace)]
    assert keys == ["detr/decoder/cross_attn", "region", "detr/encoder/self_attn", "nonlocal", "lrnet"]
    enc = maps.source(trace, "detr/encoder/self_attn")
    assert enc.driver == "point" and enc.layers == ("0", "1") and enc.heads == 3
    assert maps.source(trace, "lrnet").layers == ("stage1",)
    assert maps.relation_modules(trace) == ["fc1", maps.DETR_DECODER_MODULE]
    # a family that is absent contributes nothing
    bare = Trace(meta=dict(trace.meta))
    bare["detections/boxes"] = trace["detections/boxes"]
    assert maps.sources(bare) == [] and maps.relation_modules(bare) == []


def test_encoder_point_map_is_the_softmax_row_of_the_clicked_cell(trace):
    src = maps.source(trace, "detr/encoder/self_attn")
    fa = trace.factored["detr/encoder/self_attn"]
    x, y = 70.0, 40.0  # stride 16 → cell (row 2, col 4) of an 6×8 grid
    cell = 2 * 8 + 4
    m = maps.point_map(trace, src, (x, y), layer=0)
    assert m.values.shape == (3, 6, 8)
    for h in range(3):
        expected = naive_softmax_row(fa.q[0, h, cell], fa.k[0, h], fa.scale)
        np.testing.assert_allclose(m.values[h].ravel(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(m.head(None), m.values.mean(axis=0))
    # layer -1 is the last layer
    last = maps.point_map(trace, src, (x, y), layer=-1)
    np.testing.assert_allclose(
        last.head(2).ravel(), naive_softmax_row(fa.q[1, 2, cell], fa.k[1, 2], fa.scale), rtol=1e-5, atol=1e-7
    )


def test_cross_attention_of_an_object_reads_its_query_row(trace):
    src = maps.source(trace, "detr/decoder/cross_attn")
    full = trace["detr/decoder/cross_attn"]
    for obj, query in enumerate(trace["detections/query"]):
        m = maps.object_map(trace, src, obj, layer=1)
        np.testing.assert_array_equal(m.values.reshape(3, -1), full[1, :, query])


def test_relations_matrix_mean_and_head(trace):
    per_head = trace["relation/fc1/geometry"]
    rel = maps.relations(trace, "fc1", "geometry", None)
    np.testing.assert_allclose(rel.matrix, per_head.mean(axis=0))
    rel2 = maps.relations(trace, "fc1", "geometry", 2)
    np.testing.assert_array_equal(rel2.matrix, per_head[2])
    assert list(rel.detection) == [0, 1, 2] and rel.labels == ["d0 circle", "d1 square", "d2 triangle"]
    # ω rows sum to 1 (softmax over contributors, Eq. 2)
    np.testing.assert_allclose(maps.relations(trace, "fc1", "weight", 1).matrix.sum(axis=1), 1, rtol=1e-5)


def test_detr_decoder_self_attention_between_detected_queries(trace):
    rel = maps.relations(trace, maps.DETR_DECODER_MODULE, "weight", 1, layer=0)
    q = trace["detections/query"]
    full = trace["detr/decoder/self_attn"]
    for i in range(len(q)):
        for j in range(len(q)):
            assert rel.matrix[i, j] == full[0, 1, q[i], q[j]]


def test_lrnet_map_is_the_kxk_window_at_the_point_over_its_cells(trace):
    src = maps.source(trace, "lrnet")
    w = trace["lrnet/stage1/weight"]  # (m, 9, 6, 8)
    x, y = 40.0, 40.0  # cell (2, 2) of a stride-16 grid
    m = maps.point_map(trace, src, (x, y), layer=0)
    assert m.values.shape == (2, 3, 3) and m.cells == (3, 3)
    for g in range(2):
        np.testing.assert_array_equal(m.values[g].ravel(), w[g, :, 2, 2])
    assert m.rect == (16.0, 16.0, 64.0, 64.0)  # cells (1..3, 1..3) of 16 px
    assert m.cell_rect(1, 1) == (32.0, 32.0, 48.0, 48.0)  # the centre cell holds the point
    np.testing.assert_array_equal(maps.lrnet_window(trace, "stage1", (x, y))[1].ravel(), w[1, :, 2, 2])
    # appearance term on request, signed: a scale centred on 0
    ma = maps.point_map(trace, src, (x, y), layer=0, term="appearance")
    assert ma.values[0, 1, 1] == trace["lrnet/stage1/appearance"][0, 4, 2, 2] and ma.symmetric
    scale = ma.scale(shared=True)
    assert scale.lo == -scale.hi and scale.hi == pytest.approx(np.abs(ma.values).max())


def test_nonlocal_row_and_region_parts(trace):
    src = maps.source(trace, "nonlocal")
    m = maps.point_map(trace, src, (5.0, 5.0), layer=0)
    np.testing.assert_array_equal(m.values.ravel(), trace["nonlocal/block1/attn"][0])
    assert m.rect == (0.0, 0.0, 128.0, 96.0) and m.cells == (6, 8)
    region = maps.source(trace, "region")
    r = maps.object_map(trace, region, 1, layer=0, term="geometry")
    # positions are laid out row-major on a 3×3 lattice, so the cells are the values in order
    assert r.values.shape == (2, 3, 3)
    np.testing.assert_array_equal(r.values.reshape(2, -1), trace["region/geometry"][1])
    np.testing.assert_array_equal(maps.square_points(trace["region/geometry"][1], r.points), r.values)
    # the support lattice: cells centred on the samples (20 px apart over the box 60..100 × 20..70)
    assert r.rect == pytest.approx((50.0, 7.5, 110.0, 82.5))


def test_small_multiples_share_one_range_with_the_shown_map(trace):
    src = maps.source(trace, "detr/encoder/self_attn")
    m = maps.point_map(trace, src, (70.0, 40.0), layer=0)
    tiles, titles = m.multiples()
    assert titles == ["head 0", "head 1", "head 2", "mean"]
    shared = m.scale(shared=True)
    assert (shared.lo, shared.hi) == (float(np.min(tiles)), float(np.max(tiles))) and shared.shared
    own = m.scale(shared=False, head=1)
    assert (own.lo, own.hi) == (float(m.values[1].min()), float(m.values[1].max())) and not own.shared
    assert shared.describe().startswith("shared range") and own.describe().startswith("per map")


def test_follow_object_by_query_then_by_overlap(trace):
    moved = synthetic_trace(seed=1)
    moved["detections/boxes"] = trace["detections/boxes"][::-1] + 2
    moved["detections/query"] = trace["detections/query"][::-1].copy()
    assert maps.follow_object(trace, moved, 0) == 2
    del moved.arrays["detections/query"]
    assert maps.follow_object(trace, moved, 0) == 2  # best IoU
    moved["detections/boxes"] = np.array([[500, 500, 510, 510]], np.float32)
    assert maps.follow_object(trace, moved, 0) is None


def test_grid_inferred_when_meta_has_none():
    t = Trace(meta={"input": {"size": [200, 100]}})
    g = maps.grid_for(t, "nonlocal/b/attn", size=50)
    assert (g.height, g.width) == (5, 10)  # the factorisation with the image's 2:1 aspect
    assert g.cell_of_point(199, 99) == 49 and g.cell_of_point(0, 0) == 0
    t.meta["grids"] = {"nonlocal/b": {"query": Grid(2, 4, 8.0).to_json(), "key": Grid(1, 2, 16.0).to_json()}}
    assert maps.grid_for(t, "nonlocal/b/attn", 8, role="query").width == 4
    assert maps.grid_for(t, "nonlocal/b/attn", 2, role="key").stride == 16.0


def test_relative_geometry_is_normalised_by_the_receiving_box():
    boxes = np.array([[0, 0, 10, 20], [20, 0, 30, 20]], float)
    off = maps.relative_geometry(boxes, 0)
    np.testing.assert_allclose(off[1], [2.0, 0.0])  # 20 px right over a 10 px wide box
    np.testing.assert_allclose(off[0], [0.0, 0.0])


def test_relation_rows_map_to_detections_as_the_trace_says(trace):
    # modules over proposals: detection i is row detections/proposal[i]
    P = 5
    rng = np.random.default_rng(3)
    trace["relation/fc2/weight"] = rng.random((2, P, P)).astype(np.float32)
    trace["relation/fc2/boxes"] = rng.random((P, 4)).astype(np.float32) * 10
    trace["detections/proposal"] = np.array([4, 0, 2])
    full = trace["relation/fc2/weight"][1]
    rel = maps.relations(trace, "fc2", "weight", 1)  # over the detections by default
    assert list(rel.detection) == [0, 1, 2] and list(rel.rows) == [4, 0, 2]
    np.testing.assert_array_equal(rel.matrix, full[np.ix_([4, 0, 2], [4, 0, 2])])
    np.testing.assert_array_equal(rel.boxes, trace["detections/boxes"])  # arrows between the drawn boxes
    assert maps.row_of_detection(rel, 0) == 0
    prop = maps.relations(trace, "fc2", "weight", 1, over="proposals")
    assert list(prop.detection) == [1, -1, 2, -1, 0]
    assert prop.labels == ["d1 square", "p1", "d2 triangle", "p3", "d0 circle"]
    assert maps.row_of_detection(prop, 0) == 4
    np.testing.assert_array_equal(prop.matrix, full)
    trace["detections/proposal"] = np.array([4, 4, 2])  # two classes of one proposal share its row
    rel = maps.relations(trace, "fc2", "weight", 1)
    assert [maps.row_of_detection(rel, i) for i in range(3)] == [0, 1, 2]
    # a detection never ranks its own proposal (its twin on the same row) above the others
    assert list(rel.ranking(0, 5)) == [2]
    prop = maps.relations(trace, "fc2", "weight", 1, over="proposals")
    assert [maps.row_of_detection(prop, i) for i in range(3)] == [4, 4, 2]
    # duplicate removal: detections/nms_row; a detection without a row is left out, and said so
    trace["relation/nms/weight"] = rng.random((1, 2, 2)).astype(np.float32)
    trace["relation/nms/boxes"] = np.zeros((2, 4), np.float32)
    trace["detections/nms_row"] = np.array([1, -1, 0])
    nms = maps.relations(trace, "nms", "weight", None)
    assert list(nms.detection) == [0, 2] and maps.row_of_detection(nms, 1) is None and "1 detection" in nms.note
    assert list(maps.relations(trace, "nms", "weight", None, over="proposals").detection) == [2, 0]
    # region rows: detections/region_row
    trace["detections/region_row"] = np.array([2, 0, -1])
    src = maps.source(trace, "region")
    np.testing.assert_array_equal(maps.object_map(trace, src, 0, 0).values.reshape(2, -1), trace["region/weight"][2])
    assert maps.object_map(trace, src, 2, 0) is None


def test_arrows_and_bars_come_from_one_ranking(trace):
    rel = maps.relations(trace, "fc1", "weight", 2)
    top, segments, strength = rel.arrows(1, 8)
    assert list(top) == list(rel.ranking(1, 8)) and 1 not in top
    values = rel.matrix[1, top]
    assert list(values) == sorted(values, reverse=True)
    centres = (trace["detections/boxes"][:, :2] + trace["detections/boxes"][:, 2:]) / 2
    np.testing.assert_allclose(segments[:, :2], centres[top])  # from the giver …
    np.testing.assert_allclose(segments[:, 2:], np.repeat(centres[1][None], len(top), 0))  # … to the receiver
    np.testing.assert_allclose(strength, values / values.max())


def test_detr_decoder_self_attention_is_named_query_query_attention(trace):
    rel = maps.relations(trace, maps.DETR_DECODER_MODULE, "weight", None)
    assert rel.name == "query–query attention" and "ω" not in rel.name

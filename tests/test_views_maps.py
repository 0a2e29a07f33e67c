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
    assert list(rel.detection_of_row) == [0, 1, 2]
    # ω rows sum to 1 (softmax over contributors, Eq. 2)
    np.testing.assert_allclose(maps.relations(trace, "fc1", "weight", 1).matrix.sum(axis=1), 1, rtol=1e-5)


def test_detr_decoder_self_attention_between_detected_queries(trace):
    rel = maps.relations(trace, maps.DETR_DECODER_MODULE, "weight", 1, layer=0)
    q = trace["detections/query"]
    full = trace["detr/decoder/self_attn"]
    for i in range(len(q)):
        for j in range(len(q)):
            assert rel.matrix[i, j] == full[0, 1, q[i], q[j]]


def test_lrnet_window_places_the_kxk_weights_around_the_point(trace):
    src = maps.source(trace, "lrnet")
    w = trace["lrnet/stage1/weight"]  # (m, 9, 6, 8)
    x, y = 40.0, 40.0  # cell (2, 2)
    m = maps.point_map(trace, src, (x, y), layer=0)
    for g in range(2):
        for di in range(3):
            for dj in range(3):
                assert m.values[g, 2 + di - 1, 2 + dj - 1] == w[g, di * 3 + dj, 2, 2]
    assert np.count_nonzero(m.values[0]) == 9
    np.testing.assert_array_equal(maps.lrnet_window(trace, "stage1", (x, y))[1].ravel(), w[1, :, 2, 2])
    # appearance term on request
    ma = maps.point_map(trace, src, (x, y), layer=0, term="appearance")
    assert ma.values[0, 2, 2] == trace["lrnet/stage1/appearance"][0, 4, 2, 2]


def test_nonlocal_row_and_region_parts(trace):
    src = maps.source(trace, "nonlocal")
    m = maps.point_map(trace, src, (5.0, 5.0), layer=0)
    np.testing.assert_array_equal(m.values.ravel(), trace["nonlocal/block1/attn"][0])
    region = maps.source(trace, "region")
    r = maps.object_map(trace, region, 1, layer=0, term="geometry")
    np.testing.assert_array_equal(r.values, trace["region/geometry"][1])
    square = maps.square_points(r.values, r.points)
    assert square.shape == (2, 3, 3)
    # positions are laid out row-major, so the lattice is the values in order
    np.testing.assert_array_equal(square.reshape(2, -1), r.values)


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
    rel = maps.relations(trace, "fc2", "weight", 1)
    assert list(rel.detection_of_row) == [1, -1, 2, -1, 0]
    assert maps.row_of_detection(rel, 0) == 4
    trace["detections/proposal"] = np.array([4, 4, 2])  # two classes of one proposal share its row
    rel = maps.relations(trace, "fc2", "weight", 1)
    assert [maps.row_of_detection(rel, i) for i in range(3)] == [4, 4, 2]
    assert list(rel.detection_of_row) == [-1, -1, 2, -1, 0]
    np.testing.assert_array_equal(rel.matrix, trace["relation/fc2/weight"][1])
    # duplicate removal: detections/nms_row
    trace["relation/nms/weight"] = rng.random((1, 2, 2)).astype(np.float32)
    trace["relation/nms/boxes"] = np.zeros((2, 4), np.float32)
    trace["detections/nms_row"] = np.array([1, -1, 0])
    nms = maps.relations(trace, "nms", "weight", None)
    assert list(nms.detection_of_row) == [2, 0] and maps.row_of_detection(nms, 1) is None
    # region rows: detections/region_row
    trace["detections/region_row"] = np.array([2, 0, -1])
    src = maps.source(trace, "region")
    np.testing.assert_array_equal(maps.object_map(trace, src, 0, 0).values, trace["region/weight"][2])
    assert maps.object_map(trace, src, 2, 0) is None

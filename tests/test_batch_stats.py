"""Batch statistics: each family's measures against their formulas written as plain loops, streaming sums that
merge by addition and do not grow with the number of inputs, and the figures drawn from a summary."""

import json
import math

import numpy as np
import pytest

from relviz.batch import stats
from relviz.batch.figures import write_figures
from relviz.core.trace import FactoredAttention, Trace


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


LABELS = ["background", "circle", "square", "odd"]


def relation_trace(rng, rows=(0, 2, 3, 5), proposals=7, heads=3):
    boxes = np.zeros((proposals, 4))
    xy = rng.uniform(0, 200, size=(proposals, 2))
    wh = rng.uniform(5, 60, size=(proposals, 2))
    boxes[:, :2], boxes[:, 2:] = xy, xy + wh
    weight = _softmax(rng.normal(size=(heads, proposals, proposals)))
    rows = np.asarray(rows)
    labels = rng.integers(1, len(LABELS), size=len(rows))
    t = Trace(meta={"family": "relation", "labels": LABELS,
                    "input": {"path": "x.png", "kind": "image", "frame": 0, "size": [300, 300]}})
    t["relation/fc1/weight"] = weight.astype(np.float32)
    t["relation/fc1/boxes"] = boxes.astype(np.float32)
    t["detections/boxes"] = boxes[rows].astype(np.float32)
    t["detections/scores"] = np.linspace(0.9, 0.8, len(rows)).astype(np.float32)
    t["detections/labels"] = labels
    t["detections/proposal"] = rows
    return t


def _bin(value, edges):
    for i in range(len(edges) - 1):
        if edges[i] <= value < edges[i + 1]:
            return i
    return len(edges) - 2


def test_relation_class_pairs_and_geometry_match_a_loop(rng):
    t = relation_trace(rng)
    m = stats.relation_measures(t, len(LABELS))
    w = t["relation/fc1/weight"].astype(np.float64)
    rows, labels, boxes = t["detections/proposal"], t["detections/labels"], t["detections/boxes"].astype(np.float64)
    heads, c = w.shape[0], len(LABELS)
    nd, ns = len(stats.DISTANCE_EDGES) - 1, len(stats.SCALE_EDGES) - 1
    pair_sum, pair_n = np.zeros((heads, c, c)), np.zeros((c, c))
    geo_sum, geo_n = np.zeros((heads, nd, ns)), np.zeros((nd, ns))
    for i in range(len(rows)):  # receiving
        for j in range(len(rows)):  # contributing
            if i == j:
                continue
            pair_n[labels[i], labels[j]] += 1
            pair_sum[:, labels[i], labels[j]] += w[:, rows[i], rows[j]]
            bi, bj = boxes[i], boxes[j]
            size_i = math.sqrt((bi[2] - bi[0]) * (bi[3] - bi[1]))
            size_j = math.sqrt((bj[2] - bj[0]) * (bj[3] - bj[1]))
            d = math.dist(((bi[0] + bi[2]) / 2, (bi[1] + bi[3]) / 2), ((bj[0] + bj[2]) / 2, (bj[1] + bj[3]) / 2))
            cell = (_bin(d / size_i, stats.DISTANCE_EDGES), _bin(math.log2(size_j / size_i), stats.SCALE_EDGES))
            geo_n[cell] += 1
            geo_sum[(slice(None), *cell)] += w[:, rows[i], rows[j]]
    np.testing.assert_allclose(m["relation/fc1/weight/pair_sum"], pair_sum, rtol=1e-6)
    np.testing.assert_array_equal(m["relation/fc1/weight/pair_n"], pair_n)
    np.testing.assert_allclose(m["relation/fc1/weight/geo_sum"], geo_sum, rtol=1e-6)
    np.testing.assert_array_equal(m["relation/fc1/weight/geo_n"], geo_n)


def detr_trace(rng, factored=False, layers=2, heads=2, h=3, w=4):
    s = h * w
    t = Trace(meta={"family": "detr", "labels": ["a", "b"], "input": {"path": "x.png", "kind": "image", "frame": 0,
                                                                         "size": [4 * 32, 3 * 32]},
                    "grid": {"shape": [h, w], "stride": 32.0, "scale": [1.0, 1.0]}})
    if factored:
        q = rng.normal(size=(layers, heads, s, 8)).astype(np.float32)
        k = rng.normal(size=(layers, heads, s, 8)).astype(np.float32)
        mask = np.zeros(s, bool)
        mask[-w:] = True  # the last row of cells is padding
        t["detr/encoder/self_attn"] = FactoredAttention(q, k, 0.5, mask)
    else:
        t["detr/encoder/self_attn"] = _softmax(rng.normal(size=(layers, heads, s, s))).astype(np.float32)
    return t


@pytest.mark.parametrize("factored", [False, True])
def test_detr_encoder_distance_and_entropy_match_a_loop(rng, factored):
    t = detr_trace(rng, factored)
    m = stats.detr_measures(t)
    a = t["detr/encoder/self_attn"].astype(np.float64)
    layers, heads, s, _ = a.shape
    mask = t.factored["detr/encoder/self_attn"].key_mask if factored else np.zeros(s, bool)
    valid = [i for i in range(s) if not mask[i]]
    centre = [((i % 4 + 0.5) * 32, (i // 4 + 0.5) * 32) for i in range(s)]
    dist, ent = np.zeros((layers, heads)), np.zeros((layers, heads))
    for L in range(layers):
        for h in range(heads):
            for q in valid:
                for k in valid:
                    p = a[L, h, q, k]
                    dist[L, h] += p * math.dist(centre[q], centre[k])
                    ent[L, h] -= p * math.log(p) if p > 0 else 0.0
    np.testing.assert_allclose(m["detr/encoder/distance"], dist, rtol=1e-5)
    np.testing.assert_allclose(m["detr/encoder/entropy"], ent, rtol=1e-5)
    np.testing.assert_allclose(m["detr/encoder/entropy_norm"], ent / math.log(len(valid)), rtol=1e-5)
    assert float(m["detr/encoder/queries"]) == len(valid)


def test_nonlocal_distance_in_space_and_time_matches_a_loop(rng):
    # queries on a (2, 2, 3) grid of stride 8, keys on (2, 1, 2) of stride 16; two input frames per time step
    qg = {"shape": [2, 2, 3], "stride": 8.0, "scale": [1.0, 1.0], "frame_stride": 2}
    kg = {"shape": [2, 1, 2], "stride": 16.0, "scale": [1.0, 1.0], "frame_stride": 2}
    t = Trace(meta={"family": "nonlocal", "labels": ["x", "y"],
                    "input": {"path": "c.mp4", "kind": "image", "frame": 0, "size": [24, 16]},
                    "nonlocal": {"order": ["b0"], "blocks": {"b0": {"query_grid": qg, "key_grid": kg}}}})
    attn = _softmax(rng.normal(size=(12, 4)))
    t["nonlocal/b0/attn"] = attn.astype(np.float32)
    m = stats.nonlocal_measures(t)

    def centre(idx, g, hw):
        tt, rest = divmod(idx, hw[0] * hw[1])
        i, j = divmod(rest, hw[1])
        return (j + 0.5) * g["stride"], (i + 0.5) * g["stride"], tt * 2 + 0.5

    space = time = 0.0
    for q in range(12):
        xq, yq, tq = centre(q, qg, (2, 3))
        for k in range(4):
            xk, yk, tk = centre(k, kg, (1, 2))
            space += attn[q, k] * math.hypot(xq - xk, yq - yk)
            time += attn[q, k] * abs(tq - tk)
    assert m["nonlocal/b0/space"] == pytest.approx(space, rel=1e-5)
    assert m["nonlocal/b0/time"] == pytest.approx(time, rel=1e-5)


def _lrnet_trace(geometry, weight, h, w):
    g, k, _ = geometry.shape
    grid = {"shape": [h, w], "stride": 1.0, "scale": [1.0, 1.0]}
    meta = {"family": "lrnet", "labels": ["a"], "input": {"path": "x.png", "kind": "image", "frame": 0, "size": [w, h]},
            "lrnet": {"order": ["l0"], "layers": {"l0": {"kernel_size": k, "stride": 1, "grid": grid,
                                                         "input_grid": grid}}}}
    t = Trace(meta=meta)
    t["lrnet/l0/geometry"] = geometry.astype(np.float32)
    t["lrnet/l0/weight"] = weight.astype(np.float32)
    t["lrnet/l0/appearance"] = np.zeros_like(weight, dtype=np.float32)
    return t


def test_lrnet_kl_from_the_geometry_prior_matches_its_formula(rng):
    """ω = the prior (no appearance term) gives KL 0, even where the window leaves the image (both are taken over
    the cells inside it); ω on the centre cell alone gives −ln prior(centre) over those cells."""
    g, k, h, w = 2, 3, 3, 4
    geometry = rng.normal(size=(g, k, k))
    prior = _softmax(geometry.reshape(g, -1)).reshape(g, k * k)
    as_prior = np.repeat(prior[:, :, None, None], h, 2).repeat(w, 3)
    m = stats.lrnet_measures(_lrnet_trace(geometry, as_prior, h, w))
    np.testing.assert_allclose(m["lrnet/l0/kl"], 0.0, atol=1e-6)
    assert float(m["lrnet/l0/cells"]) == h * w

    centre = np.zeros((g, k * k, h, w))
    centre[:, k * k // 2] = 1.0
    m = stats.lrnet_measures(_lrnet_trace(geometry, centre, h, w))
    expected = np.zeros(g)
    for i in range(h):
        for j in range(w):
            inside = [(a, b) for a in range(k) for b in range(k) if 0 <= i + a - 1 < h and 0 <= j + b - 1 < w]
            p = prior.reshape(g, k, k)
            norm = sum(p[:, a, b] for a, b in inside)
            expected += -np.log(p[:, 1, 1] / norm)
    np.testing.assert_allclose(m["lrnet/l0/kl"], expected, rtol=1e-5)


def test_sums_merge_by_addition_and_stay_the_same_size(rng):
    traces = [relation_trace(rng) for _ in range(30)]
    whole = stats.Accumulator()
    for t in traces[:1]:
        whole.add(t)
    size_after_one = whole.nbytes
    for t in traces[1:]:
        whole.add(t)
    assert whole.nbytes == size_after_one  # memory does not grow with the inputs
    a, b = stats.Accumulator(), stats.Accumulator()
    for i, t in enumerate(traces):
        (a if i % 2 else b).add(t)
    a.merge(b)
    assert a.items == whole.items == 30
    for key in whole.sums:
        np.testing.assert_allclose(a.sums[key], whole.sums[key], rtol=1e-12)
    assert json.loads(json.dumps(a.summary(), allow_nan=False)) == json.loads(json.dumps(whole.summary()))


def test_state_round_trip_and_a_trace_that_does_not_fit(rng, tmp_path):
    acc = stats.Accumulator()
    acc.add(relation_trace(rng))
    acc.save(tmp_path / "s.npz", {"manifest_bytes": 123})
    back, header = stats.Accumulator.load(tmp_path / "s.npz")
    assert header["manifest_bytes"] == 123 and back.items == 1 and back.labels == LABELS
    for key in acc.sums:
        np.testing.assert_array_equal(back.sums[key], acc.sums[key])
    before = {k: v.copy() for k, v in back.sums.items()}
    with pytest.raises(stats.BadInputError, match="one run takes one model"):
        back.add(relation_trace(rng, heads=5))
    assert all(np.array_equal(before[k], back.sums[k]) for k in before)  # nothing half-added


def test_summary_means_and_figures(rng, tmp_path):
    acc = stats.Accumulator()
    traces = [relation_trace(rng) for _ in range(5)]
    for t in traces:
        acc.add(t)
    summary = acc.summary()
    term = summary["relation"]["modules"]["fc1"]["weight"]["by_class_pair"]
    per_head = np.array(term["per_head"], dtype=float)
    pairs = np.array(term["pairs"], dtype=float)
    total = sum(stats.relation_measures(t, 4)["relation/fc1/weight/pair_sum"] for t in traces)
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(per_head, np.where(pairs > 0, total / pairs, np.nan), rtol=1e-9)
    paths = write_figures(summary, tmp_path / "stats")
    assert sorted(p.name for p in paths) == ["relation-fc1-class-pairs.pdf", "relation-fc1-geometry.pdf"]
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")


@pytest.mark.parametrize("family", ["relation", "detr", "nonlocal", "lrnet", "regionfeat"])
def test_a_run_that_measured_nothing_has_a_summary_and_no_figures(family, tmp_path):
    summary = stats.Accumulator(family, ["a", "b"]).summary()
    assert summary["inputs"] == 0 and json.loads(json.dumps(summary, allow_nan=False))["family"] == family
    assert write_figures(summary, tmp_path) == []

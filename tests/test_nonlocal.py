"""Non-local blocks against the paper's formulas, zero-initialised identity, networks, capture and zoo."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from relviz.core.capture import recording
from relviz.core.errors import BadInputError, RelvizError
from relviz.core.grid import Grid
from relviz.core.trace import Trace
from relviz.models.nonlocal_block import INSTANTIATIONS, NonLocalBlock
from relviz.models.nonlocal_net import NonLocalResNet, placement, resolve_config
from relviz.zoo import RunOptions, load_model, run_model


def naive_nonlocal(block: NonLocalBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. (1)–(6) written out position by position: returns z and the normalised f/C(x) (B, Nq, Nk)."""
    b = x.shape[0]
    dims = x.shape[2:]
    xs = x.flatten(2)  # (B, C, Nq)
    pool = block._pool
    xk = pool(x).flatten(2)  # the Gaussian compares x_i with the sub-sampled x_j
    g = pool(block.g(x)).flatten(2)  # (B, d, Nk)
    if block.instantiation != "gaussian":
        th = block.theta(x).flatten(2)
        ph = pool(block.phi(x)).flatten(2)
    nq, nk = xs.shape[2], g.shape[2]
    y = torch.zeros(b, block.inner, nq, dtype=x.dtype)
    attn = torch.zeros(b, nq, nk, dtype=x.dtype)
    for bi in range(b):
        for i in range(nq):
            f = torch.zeros(nk, dtype=x.dtype)
            for j in range(nk):
                if block.instantiation == "gaussian":  # eq. (2)
                    f[j] = torch.exp(xs[bi, :, i] @ xk[bi, :, j])
                elif block.instantiation == "embedded":  # eq. (3), scaled by 1/√d as the official code does
                    f[j] = torch.exp((th[bi, :, i] @ ph[bi, :, j]) / (block.inner**0.5 if block.scale else 1.0))
                elif block.instantiation == "dot":  # eq. (4)
                    f[j] = th[bi, :, i] @ ph[bi, :, j]
                else:  # eq. (5): ReLU(w_fᵀ [θ_i, φ_j])
                    wf = torch.cat([block.concat_theta, block.concat_phi])
                    f[j] = torch.relu(wf @ torch.cat([th[bi, :, i], ph[bi, :, j]]))
            norm = f.sum() if block.instantiation in ("gaussian", "embedded") else nk  # C(x)
            attn[bi, i] = f / norm
            for j in range(nk):
                y[bi, :, i] += attn[bi, i, j] * g[bi, :, j]  # eq. (1)
    y = y.reshape(b, block.inner, *dims)
    return block.bn(block.w_z(y)) + x, attn  # eq. (6)


def _randomise(block: NonLocalBlock) -> None:
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
        block.bn.running_mean.normal_(0, 0.1)
        block.bn.running_var.uniform_(0.5, 1.5)


@pytest.mark.parametrize("inst", INSTANTIATIONS)
@pytest.mark.parametrize("dim", [2, 3])
def test_block_matches_formula(inst, dim):
    torch.manual_seed(0)
    block = NonLocalBlock(6, dim, inst, subsample=True).double().eval()
    _randomise(block)
    shape = (2, 6, 5, 4) if dim == 2 else (1, 6, 2, 4, 5)
    x = torch.randn(*shape, dtype=torch.float64) * 0.5
    with torch.no_grad():
        expected, attn = naive_nonlocal(block, x)
        with recording() as rec:
            got = block(x)
    assert torch.allclose(got, expected, atol=1e-10)
    trace = rec.finish(0)
    if inst in ("gaussian", "embedded"):
        recorded = trace["nonlocal/nl/attn"].reshape(attn.shape[1:])  # factored: materialised on demand
        np.testing.assert_allclose(recorded.sum(-1), 1.0, atol=1e-5)
    else:
        recorded = trace["nonlocal/nl/attn"]
        np.testing.assert_allclose(trace["nonlocal/nl/pairwise"] / attn.shape[-1], recorded, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(recorded, attn[0].numpy(), atol=1e-5)


def test_no_subsampling_and_no_scale():
    torch.manual_seed(1)
    block = NonLocalBlock(4, 2, "embedded", subsample=False, scale=False).double().eval()
    _randomise(block)
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        expected, attn = naive_nonlocal(block, x)
        assert torch.allclose(block(x), expected, atol=1e-10)
    assert attn.shape == (1, 9, 9)


@pytest.mark.parametrize("inst", INSTANTIATIONS)
def test_zero_initialised_block_is_identity(inst):
    torch.manual_seed(2)
    for dim, shape in ((2, (2, 8, 6, 6)), (3, (1, 8, 3, 4, 4))):
        block = NonLocalBlock(8, dim, inst)
        x = torch.randn(*shape)
        for train in (True, False):
            block.train(train)
            with torch.no_grad():
                assert torch.equal(block(x), x)
        assert float(block.bn.weight.detach().abs().sum()) == 0.0


def test_placements_and_bad_names():
    cfg = resolve_config({})
    assert placement({**cfg, "nonlocal": "1"}) == ["res4.4"]
    assert placement({**cfg, "nonlocal": "5"}) == ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"]
    with pytest.raises(BadInputError, match="valid blocks: res2.0, res2.1"):
        placement({**cfg, "nonlocal": ["res4.9"]})
    with pytest.raises(BadInputError, match="instantiation"):
        resolve_config({"instantiation": "cosine"})
    with torch.device("meta"):
        net = NonLocalResNet({"nonlocal": "5"})
    assert sorted(net.blocks()) == ["res3.1", "res3.3", "res4.1", "res4.3", "res4.5"]
    assert net.blocks()["res4.1"].inner == 512  # θ, φ, g reduce to C/2


def test_c2d_temporal_pooling_and_grids():
    torch.manual_seed(3)
    net = NonLocalResNet({"preset": "tiny", "clip": True}).eval()
    clip = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad(), recording() as rec:
        logits = net(clip)
    assert logits.shape == (1, 10)
    info = rec.meta["nonlocal_blocks"]["res3.0"]
    assert info["query_shape"] == [2, 8, 8] and info["key_shape"] == [2, 4, 4]  # 4 frames → 2 after res2
    assert info["frame_stride"] == 2 and info["query_stride"] == 8 and info["key_stride"] == 16
    trace = rec.finish(0)
    assert trace.shape("nonlocal/res3.0/attn") == (1, 1, 128, 32)


def test_grid_maps_reference_pixel_to_row_and_back():
    g = Grid(8, 8, 8.0, 1.0, 1.0, frames=2, frame_stride=2)
    q = g.cell_of_point(20.0, 44.0, frame=3)  # clip frame 3 → time step 1
    assert q == (1 * 8 + 5) * 8 + 2
    x, y, t = g.point_of_cell(q)
    assert (t, int(x // 8), int(y // 8)) == (1, 2, 5)


@pytest.fixture
def media(tmp_path):
    img = np.zeros((48, 64, 3), np.uint8)
    cv2.circle(img, (20, 24), 10, (255, 0, 0), -1)
    image = tmp_path / "shapes.png"
    cv2.imwrite(str(image), img[..., ::-1])
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for t in range(6):
        frame = np.zeros((48, 64, 3), np.uint8)
        cv2.circle(frame, (10 + 8 * t, 24), 8, (255, 255, 0), -1)
        writer.write(frame)
    writer.release()
    return image, video


def test_zoo_clip_run_and_save(media, tmp_path):
    _, video = media
    model = load_model("nonlocal-c2d-r50", weights="none", overrides={"preset": "tiny"})
    trace = run_model(model, video, RunOptions(clip_length=4, stride=1, frame=1))
    assert trace.meta["family"] == "nonlocal"
    assert trace.meta["input"]["frame_indices"] == [1, 2, 3, 4]
    assert trace["input/frames"].shape == (4, 48, 64, 3)
    blocks = trace.meta["nonlocal"]["blocks"]
    qg, kg = Grid.from_json(blocks["res3.0"]["query_grid"]), Grid.from_json(blocks["res3.0"]["key_grid"])
    assert trace.shape("nonlocal/res3.0/attn") == (qg.size, kg.size)
    loaded = Trace.load(trace.save(tmp_path / "clip.npz"))
    row = loaded.rows("nonlocal/res3.0/attn", qg.cell_of_point(20, 24, 2))
    np.testing.assert_allclose(row.sum(), 1.0, atol=1e-5)
    with pytest.raises(BadInputError, match="fewer than the clip length 8"):
        run_model(model, video, RunOptions(clip_length=8))


def test_zoo_image_model_with_dot_override(media):
    image, _ = media
    model = load_model("nonlocal-r50", weights="none", overrides={"preset": "tiny", "instantiation": "dot"})
    trace = run_model(model, image)
    assert trace.meta["nonlocal"]["instantiation"] == "dot"
    assert "nonlocal/res4.0/pairwise" in trace and "input/frames" not in trace
    n = trace.shape("nonlocal/res4.0/attn")[1]
    np.testing.assert_allclose(trace["nonlocal/res4.0/pairwise"] / n, trace["nonlocal/res4.0/attn"], rtol=1e-5)


def test_checkpoints(tmp_path, media):
    from safetensors.torch import save_file

    from relviz.models.lrnet import LRNet

    image, _ = media
    net = NonLocalResNet({"preset": "tiny", "instantiation": "concat", "nonlocal": ["res4.0"]})
    path = tmp_path / "nl.safetensors"
    save_file(net.state_dict(), str(path))
    model = load_model(weights=path)
    assert model.family.name == "nonlocal"
    assert model.module.config["instantiation"] == "concat" and model.module.nonlocal_after == ["res4.0"]
    assert run_model(model, image)["classification/logits"].shape == (10,)
    lr = tmp_path / "lr.safetensors"
    save_file(LRNet({"preset": "tiny"}).state_dict(), str(lr))
    with pytest.raises(RelvizError, match="looks like a lrnet checkpoint"):
        load_model("nonlocal-r50", weights=lr)

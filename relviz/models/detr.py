"""DETR: End-to-End Object Detection with Transformers (Carion et al., ECCV 2020).

A plain re-implementation of the official facebookresearch/detr model whose module tree — and so
whose state-dict keys — is the official one, so the published checkpoints load unchanged and
strictly: ``backbone.0.body.*`` (ResNet with frozen batch norm, ``layer4`` output only),
``backbone.1.*`` (learned position embedding only; the sine one has no state), ``input_proj``,
``query_embed``, ``transformer.{encoder,decoder}.*``, ``class_embed`` and ``bbox_embed``.

Two differences from the official code, neither of which changes the numbers:
- tensors are batch-first inside the transformer (the official code is sequence-first);
- attention runs through :class:`relviz.models.attention.MultiheadAttention`, which has
  ``nn.MultiheadAttention``'s parameters and records queries and keys when a trace is being captured.

Captured (names of the trace contract, each stacked over layers by the recorder):
``detr/encoder/self_attn`` (L, H, S, S), ``detr/decoder/self_attn`` (L, H, Q, Q) and
``detr/decoder/cross_attn`` (L, H, Q, S), all as softmax factors; S = h·w of the feature grid.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from relviz.models.attention import MultiheadAttention

RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


@dataclass
class DETRConfig:
    """Everything that defines a DETR architecture; official defaults (DETR-R50)."""

    backbone_depth: int = 50
    dilation: bool = False  # DC5: layer4's stride replaced by dilation
    hidden_dim: int = 256
    nheads: int = 8
    enc_layers: int = 6
    dec_layers: int = 6
    dim_feedforward: int = 2048
    num_queries: int = 100
    num_classes: int = 91  # class_embed has num_classes + 1 outputs (the last is "no object")
    pre_norm: bool = False
    position_embedding: str = "sine"  # or "learned"
    dropout: float = 0.1
    # what Hugging Face DETR configs can also say (relviz.zoo.hf_detr); the defaults are the official model's
    dec_nheads: int = 0  # decoder heads; 0 = as many as the encoder's (nheads)
    activation: str = "relu"  # of the feed-forward layers: relu, gelu or silu
    #: a ResNet of other widths than torchvision's (transformers' ResNetConfig): [stem, stage1..4] output widths,
    #: blocks per stage and the block type; None = torchvision's ResNet-``backbone_depth``
    backbone_widths: list[int] | None = None
    backbone_blocks: list[int] | None = None
    backbone_bottleneck: bool = True

    @property
    def backbone_channels(self) -> int:
        if self.backbone_widths:
            return int(self.backbone_widths[-1])
        return 512 if self.backbone_depth in (18, 34) else 2048

    @property
    def stride(self) -> int:
        return 16 if self.dilation else 32


# -- backbone -------------------------------------------------------------------------------------


class _Block(nn.Module):
    """A residual block of any widths, with torchvision's parameter names (conv1, bn1, …, downsample.0/1).

    Bottleneck: 1×1 ``in → mid``, 3×3 ``mid → mid`` with the stride, 1×1 ``mid → out``; basic: two 3×3.  The
    shortcut is a strided 1×1 convolution and a norm when the width or the resolution changes.  This is
    transformers' ``ResNetBottleNeckLayer`` / ``ResNetBasicLayer`` (whose widths need not be 64·2ⁱ).
    """

    def __init__(self, cin: int, cout: int, stride: int, bottleneck: bool):
        super().__init__()
        self.bottleneck = bottleneck
        mid = cout // 4 if bottleneck else cout
        self.conv1 = nn.Conv2d(cin, mid, 1 if bottleneck else 3, stride=1 if bottleneck else stride,
                               padding=0 if bottleneck else 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid if bottleneck else cout, 3, stride=stride if bottleneck else 1, padding=1,
                               bias=False)
        self.bn2 = FrozenBatchNorm2d(mid if bottleneck else cout)
        if bottleneck:
            self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
            self.bn3 = FrozenBatchNorm2d(cout)
        self.downsample = None
        if cin != cout or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), FrozenBatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.bottleneck:
            out = self.bn3(self.conv3(F.relu(out)))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def _resnet_of_widths(widths: list[int], blocks: list[int], bottleneck: bool) -> OrderedDict:
    """conv1 … layer4 of a ResNet with the given stem and stage widths (first stage unstrided)."""
    modules = OrderedDict(conv1=nn.Conv2d(3, widths[0], 7, stride=2, padding=3, bias=False),
                          bn1=FrozenBatchNorm2d(widths[0]), relu=nn.ReLU(inplace=True),
                          maxpool=nn.MaxPool2d(3, stride=2, padding=1))
    for i, (cout, n) in enumerate(zip(widths[1:], blocks)):
        cin = widths[i]
        stage = [_Block(cin if b == 0 else cout, cout, 2 if (b == 0 and i > 0) else 1, bottleneck) for b in range(n)]
        modules[f"layer{i + 1}"] = nn.Sequential(*stage)
    return modules


class Backbone(nn.Module):
    """ResNet trunk up to ``layer4`` with frozen batch norm; the padding mask follows it down."""

    def __init__(self, depth: int, dilation: bool, widths: list[int] | None = None, blocks: list[int] | None = None,
                 bottleneck: bool = True):
        super().__init__()
        if widths:
            if dilation:
                raise ValueError("DC5 dilation needs a torchvision ResNet (50, 101 or 152)")
            self.body = nn.Sequential(_resnet_of_widths(list(widths), list(blocks or ()), bottleneck))
            return
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"unsupported ResNet depth {depth}; choose one of {sorted(RESNET_BLOCKS)}")
        if dilation and depth in (18, 34):
            raise ValueError("DC5 dilation needs a bottleneck ResNet (50, 101 or 152)")
        resnet = getattr(torchvision.models, f"resnet{depth}")(
            weights=None, replace_stride_with_dilation=[False, False, dilation], norm_layer=FrozenBatchNorm2d
        )
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        self.body = nn.Sequential(OrderedDict((n, getattr(resnet, n)) for n in names))

    def forward(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(images)
        mask = F.interpolate(mask[None].float(), size=features.shape[-2:]).to(torch.bool)[0]
        return features, mask


class PositionEmbeddingSine(nn.Module):
    """The sine position encoding of the official code, normalised to [0, 2π] over the unpadded extent."""

    def __init__(self, num_pos_feats: int = 128, temperature: float = 10000.0):
        super().__init__()
        self.num_pos_feats, self.temperature, self.scale = num_pos_feats, temperature, 2 * math.pi

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y_embed = y_embed / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = x_embed / (x_embed[:, :, -1:] + eps) * self.scale
        dim_t = torch.arange(self.num_pos_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.num_pos_feats)
        pos_x = x_embed[:, :, :, None] / dim_t
        pos_y = y_embed[:, :, :, None] / dim_t
        pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class PositionEmbeddingLearned(nn.Module):
    """Learned absolute row and column embeddings (the official ``--position_embedding learned``)."""

    def __init__(self, num_pos_feats: int = 128):
        super().__init__()
        self.row_embed = nn.Embedding(50, num_pos_feats)
        self.col_embed = nn.Embedding(50, num_pos_feats)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        h, w = mask.shape[-2:]
        x_emb = self.col_embed(torch.arange(w, device=mask.device))
        y_emb = self.row_embed(torch.arange(h, device=mask.device))
        pos = torch.cat([x_emb.unsqueeze(0).repeat(h, 1, 1), y_emb.unsqueeze(1).repeat(1, w, 1)], dim=-1)
        return pos.permute(2, 0, 1).unsqueeze(0).repeat(mask.shape[0], 1, 1, 1)


class Joiner(nn.Sequential):
    """``backbone.0`` is the ResNet, ``backbone.1`` the position embedding (official key layout)."""

    def forward(self, images: torch.Tensor, mask: torch.Tensor):
        features, mask = self[0](images, mask)
        return features, mask, self[1](mask).to(features.dtype)


# -- transformer (DETR paper Fig. 10) -------------------------------------------------------------


ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu, "silu": F.silu}


class EncoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, dropout, pre_norm, activation="relu"):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, trace_name="detr/encoder/self_attn")
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.pre_norm = pre_norm
        self.activation = ACTIVATIONS[activation]

    def forward(self, src, pos, key_padding_mask):
        if self.pre_norm:
            src2 = self.norm1(src)
            q = k = src2 + pos
            src = src + self.dropout1(self.self_attn(q, k, src2, key_padding_mask))
            src2 = self.norm2(src)
            return src + self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(src2)))))
        q = k = src + pos
        src = self.norm1(src + self.dropout1(self.self_attn(q, k, src, key_padding_mask)))
        src2 = self.linear2(self.dropout(self.activation(self.linear1(src))))
        return self.norm2(src + self.dropout2(src2))


class DecoderLayer(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward, dropout, pre_norm, activation="relu"):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout, trace_name="detr/decoder/self_attn")
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout, trace_name="detr/decoder/cross_attn")
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.pre_norm = pre_norm
        self.activation = ACTIVATIONS[activation]

    def forward(self, tgt, memory, pos, query_pos, memory_key_padding_mask):
        if self.pre_norm:
            tgt2 = self.norm1(tgt)
            q = k = tgt2 + query_pos
            tgt = tgt + self.dropout1(self.self_attn(q, k, tgt2))
            tgt2 = self.norm2(tgt)
            tgt2 = self.multihead_attn(tgt2 + query_pos, memory + pos, memory, memory_key_padding_mask)
            tgt = tgt + self.dropout2(tgt2)
            tgt2 = self.norm3(tgt)
            return tgt + self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(tgt2)))))
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.dropout1(self.self_attn(q, k, tgt)))
        tgt2 = self.multihead_attn(tgt + query_pos, memory + pos, memory, memory_key_padding_mask)
        tgt = self.norm2(tgt + self.dropout2(tgt2))
        tgt2 = self.linear2(self.dropout(self.activation(self.linear1(tgt))))
        return self.norm3(tgt + self.dropout3(tgt2))


class Encoder(nn.Module):
    def __init__(self, layer_args, num_layers, d_model, pre_norm):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(*layer_args) for _ in range(num_layers))
        # the official code has a final encoder norm only in the pre-norm variant
        self.norm = nn.LayerNorm(d_model) if pre_norm else None

    def forward(self, src, pos, key_padding_mask):
        for layer in self.layers:
            src = layer(src, pos, key_padding_mask)
        return self.norm(src) if self.norm is not None else src


class Decoder(nn.Module):
    def __init__(self, layer_args, num_layers, d_model):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(*layer_args) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, tgt, memory, pos, query_pos, memory_key_padding_mask):
        """Every layer's output through the shared final norm (the auxiliary-loss outputs)."""
        outputs = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos, memory_key_padding_mask)
            outputs.append(self.norm(tgt))
        return torch.stack(outputs)


class Transformer(nn.Module):
    def __init__(self, cfg: DETRConfig):
        super().__init__()
        if cfg.activation not in ACTIVATIONS:
            raise ValueError(f"unsupported activation {cfg.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        layer_args = (cfg.hidden_dim, cfg.nheads, cfg.dim_feedforward, cfg.dropout, cfg.pre_norm, cfg.activation)
        self.encoder = Encoder(layer_args, cfg.enc_layers, cfg.hidden_dim, cfg.pre_norm)
        decoder_args = (cfg.hidden_dim, cfg.dec_nheads or cfg.nheads, *layer_args[2:])
        self.decoder = Decoder(decoder_args, cfg.dec_layers, cfg.hidden_dim)
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src, mask, query_embed, pos_embed):
        """src (B, C, h, w), mask (B, h, w); returns decoder outputs (L, B, Q, C) and memory (B, S, C)."""
        b = src.shape[0]
        src = src.flatten(2).transpose(1, 2)
        pos_embed = pos_embed.flatten(2).transpose(1, 2)
        mask = mask.flatten(1)
        query_pos = query_embed.unsqueeze(0).expand(b, -1, -1)
        memory = self.encoder(src, pos_embed, mask)
        tgt = torch.zeros_like(query_pos)
        return self.decoder(tgt, memory, pos_embed, query_pos, mask), memory


class MLP(nn.Module):
    """A few fully connected layers with ReLU between them (the box head)."""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip(dims, dims[1:] + [output_dim]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < len(self.layers) - 1 else layer(x)
        return x


class DETR(nn.Module):
    def __init__(self, cfg: DETRConfig):
        super().__init__()
        self.cfg = copy.deepcopy(cfg)
        # registered in the official order, so state_dict() lists keys as the official files do
        self.transformer = Transformer(cfg)
        self.class_embed = nn.Linear(cfg.hidden_dim, cfg.num_classes + 1)
        self.bbox_embed = MLP(cfg.hidden_dim, cfg.hidden_dim, 4, 3)
        self.query_embed = nn.Embedding(cfg.num_queries, cfg.hidden_dim)
        self.input_proj = nn.Conv2d(cfg.backbone_channels, cfg.hidden_dim, kernel_size=1)
        position = PositionEmbeddingSine if cfg.position_embedding == "sine" else PositionEmbeddingLearned
        body = Backbone(cfg.backbone_depth, cfg.dilation, cfg.backbone_widths, cfg.backbone_blocks,
                        cfg.backbone_bottleneck)
        self.backbone = Joiner(body, position(cfg.hidden_dim // 2))

    def forward(self, images: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """images (B, 3, H, W) normalised; mask (B, H, W) True on padding.

        Returns ``pred_logits`` (B, Q, C+1) and ``pred_boxes`` (B, Q, 4) normalised cxcywh of the
        last decoder layer, ``aux_outputs`` of every layer (for training), and the feature ``mask``.
        """
        if mask is None:
            mask = torch.zeros(images.shape[0], *images.shape[-2:], dtype=torch.bool, device=images.device)
        features, mask, pos = self.backbone(images, mask)
        hs, _ = self.transformer(self.input_proj(features), mask, self.query_embed.weight, pos)
        logits = self.class_embed(hs)
        boxes = self.bbox_embed(hs).sigmoid()
        return {
            "pred_logits": logits[-1],
            "pred_boxes": boxes[-1],
            "aux_outputs": [{"pred_logits": a, "pred_boxes": b} for a, b in zip(logits[:-1], boxes[:-1])],
            "mask": mask,
        }


def nested_batch(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (3, H, W) images to one batch, bottom-right, with a mask True on padding (official NestedTensor)."""
    h = max(im.shape[1] for im in images)
    w = max(im.shape[2] for im in images)
    batch = images[0].new_zeros(len(images), 3, h, w)
    mask = torch.ones(len(images), h, w, dtype=torch.bool, device=images[0].device)
    for i, im in enumerate(images):
        batch[i, :, : im.shape[1], : im.shape[2]] = im
        mask[i, : im.shape[1], : im.shape[2]] = False
    return batch, mask


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def postprocess(logits: torch.Tensor, boxes: torch.Tensor, width: int, height: int):
    """Official ``PostProcess``: best real class per query and boxes in pixels of the original image."""
    prob = logits.float().softmax(-1)
    scores, labels = prob[..., :-1].max(-1)
    scale = torch.tensor([width, height, width, height], dtype=torch.float32, device=boxes.device)
    return scores, labels, box_cxcywh_to_xyxy(boxes.float()) * scale

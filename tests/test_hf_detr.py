"""Hugging Face DETR folders: both config styles, both key layouts, against transformers' own outputs.

The folders are written by ``tests/hf_detr_fixture.py`` (no transformers needed); ``reference.npz`` holds what
transformers 4.57 or 5.24 computed on the same weights (``scripts/make_hf_detr_reference.py``).
"""

import json
import shutil

import hf_detr_fixture as fx
import numpy as np
import pytest
import torch
from PIL import Image

from relviz import zoo
from relviz.cli import main
from relviz.core.capture import recording
from relviz.core.errors import CheckpointError
from relviz.core.readers import InputKind, classify
from relviz.core.trace import Trace
from relviz.zoo import hf_detr

ATTENTION = {"detr/encoder/self_attn": "encoder", "detr/decoder/self_attn": "decoder_self",
             "detr/decoder/cross_attn": "decoder_cross"}
LAYOUTS = [(case, names) for case in fx.cases() for names in (("hub", "memory") if case.startswith("v5") else ("hub",))]


def reference(case):
    return np.load(fx.DATA / case / "reference.npz")


def test_every_case_has_its_reference():
    assert {"v4-timm-r18-learned", "v4-timm-r50-dc5", "v5-resnet-sine", "v5-resnet-learned-gelu",
            "v5-timm-r18-coco"} <= set(fx.cases())


@torch.no_grad()
@pytest.mark.parametrize("case,names", LAYOUTS)
def test_outputs_and_every_heads_attention_equal_transformers(tmp_path, case, names):
    folder = fx.write_folder(case, tmp_path / case, names)
    loaded = zoo.load_model(weights=folder, device="cpu")
    ref = reference(case)
    x = torch.from_numpy(ref["pixel_values"])
    padding = ~torch.from_numpy(ref["pixel_mask"]).bool()  # transformers' pixel_mask is 1 on real pixels
    with recording() as rec:
        out = loaded.module(x, padding)
    np.testing.assert_allclose(out["pred_logits"].numpy(), ref["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["pred_boxes"].numpy(), ref["pred_boxes"], atol=1e-4, rtol=0)
    np.testing.assert_array_equal(out["pred_logits"][..., :-1].argmax(-1).numpy(), ref["logits"][..., :-1].argmax(-1))
    cells = out["mask"].flatten(1).numpy()  # True on padded feature cells
    assert not cells[0].any() and cells[1].any()
    for b in range(2):
        trace = rec.finish(b)
        for name, key in ATTENTION.items():
            ours, theirs = trace[name], ref[key][:, b]  # (L, H, Nq, Nk) per layer and head
            assert ours.shape == theirs.shape
            np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
            if name != "detr/decoder/self_attn":
                assert np.all(ours[..., cells[b]] == 0)  # padding gets exactly no attention


def test_the_architecture_comes_from_config_json(tmp_path):
    loaded = zoo.load_model(weights=fx.write_folder("v5-resnet-sine", tmp_path / "m"), device="cpu")
    cfg = loaded.config
    assert (cfg["hidden_dim"], cfg["nheads"], cfg["dec_nheads"]) == (32, 4, 2)
    assert (cfg["enc_layers"], cfg["dec_layers"], cfg["dim_feedforward"], cfg["num_queries"]) == (2, 2, 48, 7)
    assert cfg["backbone_widths"] == [8, 16, 24, 32, 48] and cfg["backbone_blocks"] == [1, 1, 2, 1]
    assert cfg["labels"] == ["N/A", "circle", "N/A", "square", "odd"]
    gelu = zoo.load_model(weights=fx.write_folder("v5-resnet-learned-gelu", tmp_path / "g"), device="cpu").config
    assert (gelu["activation"], gelu["position_embedding"], gelu["backbone_bottleneck"]) == ("gelu", "learned", False)
    dc5 = zoo.load_model(weights=fx.write_folder("v4-timm-r50-dc5", tmp_path / "d"), device="cpu").config
    assert dc5["backbone_depth"] == 50 and dc5["dilation"] is True and dc5.get("backbone_widths") is None


def test_heads_decide_the_numbers_so_they_are_read_not_guessed(tmp_path):
    """4 and 8 heads both run on the same weights and give different attention: config.json must decide."""
    folder = fx.write_folder("v4-timm-r18-learned", tmp_path / "m")
    ref = reference("v4-timm-r18-learned")
    x = torch.from_numpy(ref["pixel_values"][:1])
    config = json.loads((folder / "config.json").read_text())
    config["encoder_attention_heads"] = config["decoder_attention_heads"] = 8
    (folder / "config.json").write_text(json.dumps(config))
    with torch.no_grad():
        logits = zoo.load_model(weights=folder, device="cpu").module(x)["pred_logits"]
    assert np.abs(logits.numpy() - ref["logits"][:1]).max() > 1e-3


def test_a_file_inside_the_folder_and_pytorch_model_bin(tmp_path):
    ref = reference("v5-timm-r18-coco")
    x = torch.from_numpy(ref["pixel_values"][:1])
    folder = fx.write_folder("v5-timm-r18-coco", tmp_path / "m", weights="pytorch_model.bin")
    for weights in (folder, folder / "pytorch_model.bin"):
        loaded = zoo.load_model(weights=weights, device="cpu")
        with torch.no_grad():
            logits = loaded.module(x)["pred_logits"].numpy()
        np.testing.assert_allclose(logits, ref["logits"][:1], atol=1e-4, rtol=0)
        assert loaded.family.name == "detr" and loaded.family.labels(loaded.config)[1] == "person"


def test_a_folder_is_a_checkpoint_to_the_reader_registry(tmp_path):
    folder = fx.write_folder("v5-resnet-sine", tmp_path / "m")
    assert classify(folder) == InputKind.CHECKPOINT
    (tmp_path / "photos").mkdir()
    assert classify(tmp_path / "photos") == InputKind.FOLDER


def test_fit_report_names_the_files_keys_and_layout(tmp_path):
    folder = fx.write_folder("v5-resnet-sine", tmp_path / "m")
    from safetensors.torch import load_file, save_file

    state = load_file(folder / "model.safetensors")
    del state["model.encoder.layers.1.self_attn.k_proj.weight"]
    state["model.extra.weight"] = torch.zeros(2)
    state["model.query_position_embeddings.weight"] = torch.zeros(9, 32)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError) as info:
        zoo.load_model(weights=folder, device="cpu")
    text = str(info.value)
    assert "Hugging Face Hub file names, transformers ResNet backbone" in text
    assert "1 missing keys: model.encoder.layers.1.self_attn.k_proj.weight" in text
    assert "1 unexpected keys: model.extra.weight" in text
    assert "model.query_position_embeddings.weight (checkpoint [9, 32] vs model [7, 32])" in text


@pytest.mark.parametrize("edit,needle", [
    (lambda c: c.update(model_type="deformable_detr"), "'deformable_detr' model"),
    (lambda c: c.update(encoder_attention_heads=5), "nheads=5"),
    (lambda c: c.update(encoder_layers=10_000), "enc_layers=10000"),
    (lambda c: c["backbone_config"].update(model_type="swin"), "'swin' backbone"),
    (lambda c: c.update(id2label=[1, 2]), "id2label"),
])
def test_config_json_that_cannot_be_built_is_one_sentence(tmp_path, edit, needle):
    folder = fx.write_folder("v5-resnet-sine", tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    edit(config)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises((CheckpointError, zoo.BadInputError)) as info:
        zoo.load_model(weights=folder, device="cpu")
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_weights_without_their_config_json_are_refused_with_the_way_out(tmp_path):
    folder = fx.write_folder("v5-resnet-sine", tmp_path / "m")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(folder / "model.safetensors", alone / "detr.safetensors")
    with pytest.raises(CheckpointError, match="no config.json sits beside it"):
        zoo.load_model(weights=alone / "detr.safetensors", device="cpu")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not readable JSON"):
        zoo.load_model(weights=folder, device="cpu")


def test_hub_config_fields_of_both_styles_are_read():
    """The field names of facebook/detr-resnet-50(-dc5) (transformers 4) and their transformers 5 form."""
    v4 = {"model_type": "detr", "use_timm_backbone": True, "backbone": "resnet50", "dilation": True,
          "backbone_config": None, "backbone_kwargs": {"in_chans": 3, "out_indices": [1, 2, 3, 4], "output_stride": 16},
          "d_model": 256, "encoder_attention_heads": 8, "decoder_attention_heads": 8,
          "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048, "encoder_layers": 6, "decoder_layers": 6,
          "num_queries": 100, "position_embedding_type": "sine", "activation_function": "relu"}
    config, timm = hf_detr.architecture(v4)
    assert timm and config["backbone_depth"] == 50 and config["dilation"] is True
    v5 = {**v4, "backbone_config": {"model_type": "timm_backbone", "backbone": "resnet101", "output_stride": 16,
                                    "out_indices": [1, 2, 3, 4]}}
    del v5["backbone"], v5["use_timm_backbone"]
    config, timm = hf_detr.architecture(v5)
    assert timm and config["backbone_depth"] == 101 and config["dilation"] is True
    # fine-tunes of facebook/detr-resnet-50's "no_timm" revision: transformers' own ResNet-50
    hf_resnet = {**v4, "use_timm_backbone": False, "dilation": False, "backbone": None, "backbone_kwargs": None,
                 "backbone_config": {"model_type": "resnet", "depths": [3, 4, 23, 3], "layer_type": "bottleneck",
                                     "hidden_sizes": [256, 512, 1024, 2048], "out_features": ["stage4"]}}
    config, timm = hf_detr.architecture(hf_resnet)
    assert not timm and config["backbone_depth"] == 101 and "backbone_widths" not in config


def test_the_mapping_table_round_trips_an_official_r50():
    """Every official DETR-R50 key has its own transformers names, in every layout, and no two collide."""
    family = zoo.get_family("detr")
    with torch.device("meta"):
        official = {k: tuple(v.shape) for k, v in family.build(family.default_config()).state_dict().items()}
    for memory in (False, True):
        for timm in (False, True):
            layout = hf_detr.Layout(memory, False, timm)
            expected = hf_detr.expected_shapes(official, layout)
            assert len(expected) == len(official) + 2 * sum(k.endswith("in_proj_weight") or k.endswith("in_proj_bias")
                                                            for k in official)
            prefix = "model.backbone.model." if memory else "model.backbone.conv_encoder.model."
            backbone = [k for k in expected if "backbone" in k and "position" not in k]
            assert len(backbone) == sum(k.startswith("backbone.0.") for k in official)
            assert all(k.startswith(prefix) for k in backbone)
    hub = hf_detr.expected_shapes(official, hf_detr.Layout(False, False, True))
    assert hub["model.encoder.layers.5.self_attn.q_proj.weight"] == (256, 256)
    assert hub["model.decoder.layers.0.encoder_attn.out_proj.bias"] == (256,)
    assert hub["model.backbone.conv_encoder.model.layer4.0.downsample.1.running_var"] == (2048,)


def test_trace_command_on_a_folder_matches_transformers(tmp_path, capsys):
    case = "v5-timm-r18-coco"
    ref = reference(case)
    folder = fx.write_folder(case, tmp_path / "my-detr")
    Image.fromarray(ref["image0"]).save(tmp_path / "im.png")
    out = tmp_path / "t.npz"
    code = main(["trace", "--weights", str(folder), "--input", str(tmp_path / "im.png"), "--out", str(out),
                 "--resize", "0", "--threshold", "0", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    trace = Trace.load(out)
    np.testing.assert_allclose(trace["detr/pred_logits"], ref["logits"][0], atol=1e-4, rtol=0)
    np.testing.assert_allclose(trace["detr/pred_boxes"], ref["pred_boxes"][0], atol=1e-4, rtol=0)
    for name, key in ATTENTION.items():
        np.testing.assert_allclose(trace[name], ref[key][:, 0], atol=1e-5, rtol=0)
    assert trace.meta["labels"][:3] == ["N/A", "person", "bicycle"] and len(trace.meta["labels"]) == 91
    labels = trace["detections/labels"]
    np.testing.assert_array_equal(np.sort(labels), np.sort(ref["logits"][0][:, :-1].argmax(-1)))


def test_trace_command_refuses_a_broken_folder_in_one_line(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    image = tmp_path / "im.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
    code = main(["trace", "--weights", str(folder), "--input", str(image), "--out", str(tmp_path / "t.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("relviz: error: folder") and "model.safetensors" in err
    assert err.count("\n") == 1


def test_flags_that_contradict_config_json_are_refused(tmp_path):
    folder = fx.write_folder("v5-resnet-sine", tmp_path / "m")
    with pytest.raises(zoo.BadInputError, match="m/config.json says nheads=4, but nheads=8 was asked for"):
        zoo.load_model(weights=folder, device="cpu", overrides={"nheads": 8})
    assert zoo.load_model(weights=folder, device="cpu", overrides={"nheads": 4}).config["nheads"] == 4


@pytest.mark.parametrize("version,memory", [(4, False), (5, True)])
def test_the_table_gives_transformers_own_r50_names_and_shapes(version, memory):
    """facebook/detr-resnet-50's architecture as transformers 4 (the Hub files) and 5 (in memory) name it."""
    theirs = json.loads((fx.DATA / f"r50-keys-v{version}.json").read_text())
    theirs = {k: tuple(v) for k, v in theirs.items() if not k.endswith("num_batches_tracked")}
    family = zoo.get_family("detr")
    with torch.device("meta"):
        official = {k: tuple(v.shape) for k, v in family.build(family.default_config()).state_dict().items()}
    assert hf_detr.expected_shapes(official, hf_detr.Layout(memory, False, True)) == theirs

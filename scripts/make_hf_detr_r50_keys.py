"""The key names and shapes of transformers' DETR-R50 (facebook/detr-resnet-50's architecture), for the tests.

Run with transformers 4 (the Hub files' names) and again with transformers 5 (its in-memory names); writes
``tests/data/hf_detr/r50-keys-v<major>.json``. Nothing is downloaded: the backbone is built without weights.
"""

import json
from pathlib import Path

import torch
import transformers
from transformers import DetrConfig, DetrForObjectDetection

major = transformers.__version__.split(".")[0]
with torch.device("meta"):
    model = DetrForObjectDetection(DetrConfig(use_timm_backbone=True, backbone="resnet50",
                                              use_pretrained_backbone=False, num_labels=91))
shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
out = Path(__file__).resolve().parents[1] / "tests/data/hf_detr" / f"r50-keys-v{major}.json"
out.write_text(json.dumps(shapes, indent=0) + "\n")
print(out, len(shapes))

"""The model zoo as plain data: what ``relviz models`` prints and the application's model list shows, without torch.

Listing the zoo from the registry (:func:`relviz.zoo.models`) imports torch, torchvision and every family
module (3–5 s on two cores) and builds each architecture on the meta device to count its parameters.  The
names, families, descriptions, parameter counts and bundled weight files do not change between runs, so
they are kept here as data; only whether a bundled weights file is present is looked up on disk.

The tables are a copy of what the registry says, and ``tests/test_startup_catalog.py`` fails when they
drift apart; ``python -m relviz.zoo.catalog`` prints the tables as the registry has them now (it imports
torch), to paste here after adding a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"


@dataclass(frozen=True)
class FamilyInfo:
    name: str
    description: str
    #: "image" or "clip"
    input_kind: str
    #: the precisions the family runs in on the CPU (``Family.supported_precisions``), fp32 first
    cpu_precisions: tuple[str, ...]


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str
    description: str
    #: parameter count of the architecture (the zoo counts it on the meta device)
    params: int
    #: bundled weights file name in ``weights/`` (safetensors), or None
    weights: str | None = None

    @property
    def weights_path(self) -> Path | None:
        return WEIGHTS_DIR / self.weights if self.weights else None

    @property
    def has_weights(self) -> bool:
        path = self.weights_path
        return path is not None and path.is_file()


# -- the tables (python -m relviz.zoo.catalog prints them from the registry) ------------------------

FAMILIES: tuple[FamilyInfo, ...] = (
    FamilyInfo("detr", "DETR (Carion et al. 2020): encoder self-attention, decoder self- and cross-attention",
               "image", ("fp32", "bf16")),
    FamilyInfo("lrnet", "LR-Net (Hu et al. 2019): per-pixel k×k aggregation weights of each channel group, split "
               "into the geometry prior and the key/query appearance term", "image", ("fp32", "bf16")),
    FamilyInfo("nonlocal", "Non-local networks (Wang et al. 2018): attention from a reference point over all "
               "positions (and frames), four instantiations", "clip", ("fp32", "bf16")),
    FamilyInfo("relation", "Relation Networks (Hu et al. 2018): Faster R-CNN R50-FPN with 2fc+RM head and duplicate "
               "removal; per-head ω, ω_G, ω_A between objects", "image", ("fp32",)),
    FamilyInfo("regionfeat", "Learning Region Features (Gu et al. 2018): Faster R-CNN R50-FPN whose RoIAlign is "
               "learned; part weights w_k = softmax(G_k + A_k) per box", "image", ("fp32",)),
)

#: in the registry's order (the family modules' entries, then the demo entries, best demo first)
ENTRIES: tuple[CatalogEntry, ...] = (
    CatalogEntry("detr-r50", "detr", "DETR ResNet-50 (official architecture)", 41524768),
    CatalogEntry("detr-r50-dc5", "detr", "DETR ResNet-50 DC5 (official architecture)", 41524768),
    CatalogEntry("detr-r101", "detr", "DETR ResNet-101 (official architecture)", 60464672),
    CatalogEntry("detr-r101-dc5", "detr", "DETR ResNet-101 DC5 (official architecture)", 60464672),
    CatalogEntry("lrnet-26", "lrnet", "LR-Net-26 (7×7, m=8; paper: 14.7 M parameters, 2.6 GFLOPs)", 14607654),
    CatalogEntry("lrnet-50", "lrnet", "LR-Net-50 (7×7, m=8; paper: 23.3 M parameters, 4.3 GFLOPs)", 23372715),
    CatalogEntry("nonlocal-r50", "nonlocal",
                 "ResNet-50 + 5 non-local blocks (res3: 2, res4: 3), images; embedded Gaussian", 32915496),
    CatalogEntry("nonlocal-c2d-r50", "nonlocal",
                 "C2D ResNet-50 + 5 space-time non-local blocks, 8-frame clips; embedded Gaussian", 32915496),
    CatalogEntry("nonlocal-i3d-r50", "nonlocal",
                 "mmaction2 I3D ResNet-50 + 5 space-time non-local blocks (Kinetics-400 configs), 32-frame clips",
                 35397840),
    CatalogEntry("relation-rcnn-r50-fpn", "relation",
                 "Relation Networks: Faster R-CNN R50-FPN, 2fc+RM head, learned duplicate removal", 48599755),
    CatalogEntry("regionfeat-rcnn-r50-fpn", "regionfeat",
                 "Learning Region Features: Faster R-CNN R50-FPN with learned region features", 44994872),
    CatalogEntry("demo-relation", "relation",
                 "demo Relation Networks detector (R18-FPN, 2fc+RM, 128 px) on shapes scenes", 12562544,
                 "demo-relation.safetensors"),
    CatalogEntry("demo-detr", "detr", "demo DETR (ResNet-18, 2+2 layers, 192 px) trained on relviz's shapes scenes",
                 11931593, "demo-detr.safetensors"),
    CatalogEntry("demo-regionfeat", "regionfeat",
                 "demo learned-region-features detector (R18-FPN, 128 px) on shapes scenes", 11449272,
                 "demo-regionfeat.safetensors"),
    CatalogEntry("demo-lrnet", "lrnet", "demo LR-Net (tiny, 32 px) classifying shape and texture of patches", 77870,
                 "demo-lrnet.safetensors"),
    CatalogEntry("demo-nonlocal", "nonlocal",
                 "demo non-local ResNet (tiny, 64 px): do two distant shapes share a colour?", 172242,
                 "demo-nonlocal.safetensors"),
    CatalogEntry("demo-nonlocal-clip", "nonlocal",
                 "demo C2D non-local ResNet (tiny, 8 frames): do two moving shapes share a colour?", 172242,
                 "demo-nonlocal-clip.safetensors"),
)


# -- reading ------------------------------------------------------------------------------------------


def entries() -> dict[str, CatalogEntry]:
    """Every zoo model by name, in the registry's order."""
    return {e.name: e for e in ENTRIES}


def families() -> dict[str, FamilyInfo]:
    return {f.name: f for f in FAMILIES}


def model_rows() -> list[dict[str, Any]]:
    """What ``relviz models`` prints, one dict per model sorted by name (``--json`` prints these)."""
    return [
        {
            "name": e.name,
            "family": e.family,
            "params": e.params,
            "weights": e.weights if e.has_weights else None,
            "ready": e.has_weights,
            "description": e.description,
        }
        for e in sorted(ENTRIES, key=lambda e: e.name)
    ]


def cpu_listing() -> dict[str, Any]:
    """The application's model list before torch is imported, in the shape of the controller's zoo listing.

    ``zoo``: name, family, description, has_weights per model (registry order).  The devices are the ones
    known without torch, ``auto`` and ``cpu``, with the CPU's precisions; a GPU, and ``auto`` meaning it,
    can only be known once torch is imported, so the full listing replaces this one then.
    """
    zoo = [{"name": e.name, "family": e.family, "description": e.description, "has_weights": e.has_weights}
           for e in ENTRIES]
    cpu = ["fp32", "bf16"]  # relviz.core.devices.supported_precisions on the CPU
    by_family = {f.name: {"auto": list(f.cpu_precisions), "cpu": list(f.cpu_precisions)} for f in FAMILIES}
    return {"zoo": zoo, "devices": ["auto", "cpu"], "precisions": {"auto": cpu, "cpu": cpu},
            "family_precisions": by_family, "provisional": True}


# -- the tables from the registry (imports torch) ---------------------------------------------------------


def from_registry() -> tuple[tuple[FamilyInfo, ...], tuple[CatalogEntry, ...]]:
    """The two tables as the registry has them now: every family module imported, parameters counted."""
    import torch

    from relviz import zoo

    cpu = torch.device("cpu")
    fams = tuple(FamilyInfo(name, fam.description, fam.input_kind, tuple(fam.supported_precisions(cpu)))
                 for name, fam in zoo.families().items())
    rows = []
    for entry in zoo.models().values():
        fam = zoo.get_family(entry.family)
        params = zoo.count_parameters(fam, {**fam.default_config(), **entry.config})
        rows.append(CatalogEntry(entry.name, entry.family, entry.description, params, entry.weights))
    return fams, tuple(rows)


if __name__ == "__main__":
    fams, rows = from_registry()
    print("FAMILIES: tuple[FamilyInfo, ...] = (")
    for f in fams:
        print(f"    {f!r},")
    print(")\n\nENTRIES: tuple[CatalogEntry, ...] = (")
    for e in rows:
        print(f"    {e!r},")
    print(")")

"""The documented bounds on what relviz accepts, checked before memory or time is spent.

Every input is checked against these *before* the expensive step: an image's pixel count from its
header before it is decoded, a state dict's declared architecture before a module is built, a zip
member's declared size before it is read, a figure's pixel count before it is drawn.  The bounds keep
any single input under about 2 GB of memory on a CPU machine; a user who needs more raises the image
limits on purpose with ``--max-pixels`` or the ``RELVIZ_MAX_PIXELS`` environment variable.
"""

from __future__ import annotations

import os

#: images: decoded pixels (width × height) of one image or video frame, checked from the header
MAX_IMAGE_PIXELS = 50_000_000
#: model input: pixels after the family's resize (DETR's 800×1333 is 1.07 Mpx)
MAX_MODEL_INPUT_PIXELS = 2_500_000
#: model input of the dense relation families (LR-Net, Non-local), whose cost grows faster with the input: a
#: non-local block's attention is (positions)², so a 2.5-Mpx input needed 3.9 GB; LR-Net runs a k×k window
#: per pixel and group (68 s at 2.5 Mpx on two cores)
MAX_DENSE_INPUT_PIXELS = 1_000_000
#: model input of an I3D clip (all frames together): its stem and res2 divide time by 8, so attention in res3 is
#: (pixels/512)·(pixels/2048) entries — 61 MB per block at this bound (e.g. 80 frames of 224×224), where a C2D
#: clip of the same pixels would need 16× that
MAX_I3D_INPUT_PIXELS = 4_000_000
#: longer side / shorter side of an image or frame
MAX_ASPECT_RATIO = 30.0

#: clips: frames per clip and frame step
MAX_CLIP_LENGTH = 256
MAX_CLIP_STRIDE = 64

#: checkpoints and traces: the uncompressed bytes a file declares (zip members, safetensors header)
MAX_WEIGHT_BYTES = 2_000_000_000
MAX_TRACE_BYTES = 1_500_000_000
#: a model's parameters, estimated from its config before it is built
MAX_PARAMETERS = 400_000_000

#: figures
MIN_DPI, MAX_DPI = 30, 1200
MIN_INCHES, MAX_INCHES = 0.5, 40.0
MAX_FIGURE_PIXELS = 100_000_000  # PNG width × height at the asked DPI
#: every text of a figure prints between these sizes (points, at the figure's own size: a preset's width)
MIN_FIGURE_TEXT_PT, MAX_FIGURE_TEXT_PT = 5.0, 12.0
#: figures written by one `relviz export` (several --view/--object)
MAX_EXPORT_FIGURES = 64


def max_image_pixels() -> int:
    """The image pixel limit: ``RELVIZ_MAX_PIXELS`` when set (``--max-pixels`` sets it), else the default."""
    value = os.environ.get("RELVIZ_MAX_PIXELS", "").strip()
    if value:
        try:
            n = int(float(value))
        except ValueError:
            n = 0
        if n > 0:
            return n
    return MAX_IMAGE_PIXELS


def max_model_input_pixels(base: int = MAX_MODEL_INPUT_PIXELS) -> int:
    """The model-input limit ``base``, raised in proportion when the user raises the image limit on purpose."""
    return max(base, int(base * max_image_pixels() / MAX_IMAGE_PIXELS))


#: command-line options and recipe fields (checked by the schema in relviz.export before any work)
MIN_RESIZE, MAX_RESIZE = 16, 4096  # model input's shorter side in pixels; 0 keeps the image's size
MAX_HEADS = 64  # attention heads a model may be built with (--heads); head indices are 0..MAX_HEADS-1
MAX_TOP_K = 1000  # strongest links or relations drawn (--top-k)
MAX_RECIPE_BYTES = 1_000_000  # a recipe file, checked before it is parsed
MAX_RECIPE_DEPTH = 16  # nesting of lists/objects in a recipe file
MAX_POINTS = 32  # reference points of one figure (--point, repeatable)
MAX_INDEX = 10_000_000  # object, frame and layer indices; a larger one is a typo, not an input
MAX_COORDINATE = 1_000_000.0  # a point's x or y in image pixels
MAX_SEED = 2**32 - 1
MAX_SETTINGS = 64  # --config / --set entries; each a JSON scalar or a flat list of at most MAX_SETTING_ITEMS
MAX_SETTING_ITEMS = 16
MAX_PIXELS_OPTION = 10**12  # the largest value --max-pixels accepts (a sanity bound, not a promise)

#: traces: the metadata JSON, and the bytes one factored attention tensor may take when it is materialised
#: in full (the archive itself is bounded by MAX_TRACE_BYTES and the zip bounds below)
MAX_TRACE_META_BYTES = 16_000_000
MAX_MATERIALISED_BYTES = 512_000_000

#: figures: small multiples in one figure, and the pixels of one heatmap raster (a map is drawn at the
#: image's resolution up to this, coarser beyond: its cells are far coarser anyway)
MAX_FIGURE_PANELS = 200
MAX_HEATMAP_PIXELS = 1_000_000
#: boxes (with captions) drawn on one image, and bars in one top-k panel: the strongest ones are shown
MAX_DRAWN_BOXES = 200
MAX_DRAWN_BARS = 40

#: archives (torch.save zip files, and .npz unless the caller passes its own): members listed, and how many
#: uncompressed bytes per compressed byte they may declare once they pass ZIP_RATIO_FREE_BYTES (a zip bomb claims
#: a thousand; torch.save stores its members uncompressed)
MAX_ZIP_MEMBERS = 100_000
MAX_COMPRESSION_RATIO = 100
ZIP_RATIO_FREE_BYTES = 64_000_000
#: checkpoints: the pickle that describes a torch.save file (data.pkl, or the legacy format's pickles; an official
#: DETR training checkpoint needs well under 1 MB), a safetensors header, and the tensors and names of a state dict
MAX_PICKLE_BYTES = 16_000_000
MAX_SAFETENSORS_HEADER_BYTES = 16_000_000
MAX_STATE_DICT_KEYS = 20_000
MAX_KEY_LENGTH = 512
#: a Hugging Face model folder's config.json (facebook/detr-resnet-50's is 6 kB; id2label of LVIS about 60 kB)
MAX_MODEL_CONFIG_BYTES = 4_000_000
#: a training checkpoint's meta (mmengine/mmcv): the config text kept (read with patterns, never run) and its
#: class names (Kinetics-700 has 700; LVIS 1,203)
MAX_CONFIG_TEXT_CHARS = 1_000_000
MAX_CLASS_NAMES = 100_000
MAX_CLASS_NAME_CHARS = 200
#: a --labels FILE (one class name per line): read in full, so bounded before it is read
MAX_LABEL_FILE_BYTES = 20_000_000

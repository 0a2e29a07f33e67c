"""relviz's own demo data and training recipes: nothing is downloaded, everything comes from a seed.

- :mod:`relviz.train.scenes` — 256×256 detection scenes of coloured shapes; the ``odd`` label (a colour
  no other object has) depends on the other objects, so relations carry real information.
- :mod:`relviz.train.patches` — 32×32 shape-and-texture patches for LR-Net.
- :mod:`relviz.train.longrange` — 64×64 images and 8-frame clips for Non-local networks whose label
  (do two distant shapes share a colour?) needs a long-range interaction.
- :mod:`relviz.train.recipes` — ``python -m relviz.train <name>`` trains a demo model from scratch on
  CPU and writes ``weights/<name>.safetensors`` with its model card (:mod:`relviz.train.cards`);
  :mod:`relviz.train.evaluate` measures it on fresh data (``relviz eval``).
- :mod:`relviz.train.harness` — the one training loop (budget, progress, saves and resume, interim and
  final exports through an evaluation hook); :mod:`relviz.train.detr`, :mod:`relviz.train.rcnn` and
  :mod:`relviz.train.classifiers` supply what each recipe does differently (models, batches, loss,
  optimiser groups, measurement, card); :mod:`relviz.train.compact` writes the compact safetensors.
- :mod:`relviz.train.resources` — ``python -m relviz.train.resources`` regenerates ``resources/``.
"""

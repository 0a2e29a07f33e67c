"""``relviz batch``: one model over a whole set of inputs — traces, figures and relation statistics.

The parts, each with one job:

- :mod:`relviz.batch.inputs`: what ``--inputs`` names (a folder, a glob, a list file or a COCO json) as
  a sorted list of items, refused with one sentence before any work when it cannot be used;
- :mod:`relviz.batch.manifest`: the per-process manifest parts (one JSON line per finished item) and the
  merged ``manifest.jsonl``; a re-run skips what is done, a killed run resumes;
- :mod:`relviz.batch.stats`: streaming statistics per family (fixed-size sums, merged by addition);
- :mod:`relviz.batch.figures`: the statistics as figures (plain matplotlib);
- :mod:`relviz.batch.distributed`: ranks from ``torchrun`` (``torch.distributed``), sharding and barriers;
- :mod:`relviz.batch.runner`: the loop that ties them together, with a decoding pool ahead of the model.

The layer sits beside the application (``cli → app | batch → export → pipeline | render → views``): it
runs models through :mod:`relviz.pipeline`, draws per-input figures with :func:`relviz.export.export_figure`
and measures what :mod:`relviz.views` computes; it never imports Qt or the training package.
"""

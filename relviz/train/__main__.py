"""``python -m relviz.train <name>``: train a demo model from scratch and write its weights and card."""

from __future__ import annotations

import argparse
import sys

import torch

#: recipes whose model detects objects: they get a default score threshold in their card
DETECTOR_FAMILIES = ("detr", "relation", "regionfeat")

def main(argv: list[str] | None = None) -> int:
    from relviz.train.common import WEIGHTS_DIR, output_dir
    from relviz.train.recipes import RECIPES

    argv = sys.argv[1:] if argv is None else argv
    names = ", ".join(sorted(RECIPES))
    if not argv or argv[0].startswith("-"):
        print(f"usage: python -m relviz.train NAME [options]; NAME is one of: {names}", file=sys.stderr)
        return 2
    name = argv[0]
    if name not in RECIPES:
        print(f"unknown demo model {name!r}; valid ones: {names}", file=sys.stderr)
        return 2
    r = RECIPES[name]
    parser = argparse.ArgumentParser(prog=f"python -m relviz.train {name}", description=r.description)
    parser.add_argument("--steps", type=int, default=r.defaults["steps"], help="most optimizer steps")
    parser.add_argument("--minutes", type=float, default=r.defaults["minutes"], help="wall-time budget")
    parser.add_argument("--batch", type=int, default=r.defaults["batch"])
    parser.add_argument("--lr", type=float, default=r.defaults["lr"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--eval-n", type=int, default=200, help="fresh items for the card's accuracy")
    parser.add_argument(
        "--export-every",
        type=float,
        default=20.0,
        help="minutes between interim exports of weights and card (0: only at the end)",
    )
    parser.add_argument(
        "--baseline",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also train the relation-free baseline on the same batches (demo-relation)",
    )
    parser.add_argument(
        "--init-backbone",
        default=r.defaults.get("init_backbone", ""),
        help="start the ResNet body from this detector's file ('' for from scratch)",
    )
    parser.add_argument(
        "--odd-weight",
        type=float,
        default=3.0,
        help="two-stage detectors: weight of the 'odd' class in the classifier's cross entropy",
    )
    parser.add_argument(
        "--grouping-weight",
        type=float,
        default=0.0,
        help="demo-relation: weight of the auxiliary loss that teaches relation head 0 to attend to "
        "the other objects of the same colour (0: off)",
    )
    parser.add_argument(
        "--restart-relations",
        action="store_true",
        help="with --init-from: start the relation modules afresh as the identity (the rest is kept)",
    )
    parser.add_argument(
        "--relation-qk-lr-mult",
        type=float,
        default=1.0,
        help="learning rate of the relation modules' W_Q and W_K relative to --lr",
    )
    parser.add_argument(
        "--heads-only",
        action="store_true",
        help="two-stage detectors: train the box heads only (body, FPN and RPN frozen), with --init-from",
    )
    parser.add_argument(
        "--init-from",
        default="",
        help="two-stage detectors: continue training from this file of the same model (all tensors)",
    )
    parser.add_argument(
        "--backbone-lr-mult",
        type=float,
        default=r.defaults.get("backbone_lr_mult", 0.1),
        help="backbone learning rate relative to --lr (0: frozen), with --init-backbone",
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=r.defaults.get("pool", 0),
        help="demo-detr with a frozen body: train on the stored body features of this many scenes (0: fresh "
        "scenes through the body at every step)",
    )
    parser.add_argument(
        "--query-groups",
        type=int,
        default=r.defaults.get("query_groups", 1),
        help="demo-detr with --pool: groups of object queries during training (the exported model keeps one)",
    )
    parser.add_argument(
        "--compact-only",
        action="store_true",
        help="only rewrite the existing weights compactly and re-measure the card",
    )
    parser.add_argument(
        "--baseline-head-from",
        default="",
        help="demo-relation only: train just the relation-free baseline head on this file's body",
    )
    parser.add_argument(
        "--choose-threshold",
        action="store_true",
        help="detectors: only choose the default score threshold of the existing weights and write it to the card "
        "(training a detector does this at the end)",
    )
    parser.add_argument("--resume", action="store_true", help="continue from the saved training state")
    parser.add_argument(
        "--out",
        default=str(WEIGHTS_DIR),
        help="folder for the weights and card (default: the bundled weights/; the run state stays in "
        "$RELVIZ_TRAIN_DIR/NAME, ~/.cache/relviz/train/NAME by default)",
    )
    args = parser.parse_args(argv[1:])
    args.name = name
    torch.set_num_threads(args.threads)
    if args.baseline_head_from:
        from relviz.train.rcnn import train_baseline_head

        metrics = train_baseline_head(args, args.baseline_head_from)
    elif args.choose_threshold:
        from relviz.train.thresholds import choose_for_bundled

        metrics = choose_for_bundled(name, output_dir(args), args.eval_n)["held_out"]
    elif args.compact_only:
        from relviz.train.cards import compact_bundled

        metrics = compact_bundled(name, args.eval_n)["metrics"]
    else:
        metrics = r.train(args)
        if r.family in DETECTOR_FAMILIES:
            from relviz.train.thresholds import choose_for_bundled

            choose_for_bundled(name, output_dir(args), args.eval_n)
    print(" ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one training loop (relviz.train.harness): schedule, shared batches, clipping, resume, exports and cards."""

import argparse
import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from relviz.train.common import Budget
from relviz.train.harness import INTERIM_NOTE, CardFacts, Measured, Plan, Trainee, adamw, fit

TRAIN = Path(__file__).resolve().parents[1] / "relviz" / "train"


def _args(**kw) -> argparse.Namespace:
    base = dict(name="toy", steps=6, minutes=1000.0, batch=3, lr=0.1, export_every=0.0, resume=False)
    return argparse.Namespace(**{**base, **kw})


def _toy(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Linear(2, 1)


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(3, 2, generator=g)
    return x, x @ torch.tensor([[2.0], [-1.0]]) + 0.5


def _plan(tmp_path: Path, models: dict[str, Trainee], **kw) -> Plan:
    fields = dict(
        models=models,
        batch=_batch,
        loss=lambda _k, m, b: ((m(b[0]) - b[1]) ** 2).mean(),
        ship=lambda ms: ms["model"],
        measure=lambda run, shipped: Measured({"top1": 0.5}, {"top1": 0.9}, ["missed"]),
        weights=tmp_path / "out" / "toy.safetensors",
        card=CardFacts("toy", {"width": 2}, {"seed": 1}, {"loss": "mse"}),
        warmup=3,
        state=tmp_path / "state.pt",
    )
    return Plan(**{**fields, **kw})


def test_every_group_follows_the_schedule_times_its_mult_and_every_model_sees_the_step_batch(tmp_path):
    a, b = _toy(0), _toy(1)
    opt_a = torch.optim.SGD([{"params": [a.weight], "mult": 1.0}, {"params": [a.bias], "mult": 0.25}], lr=0.0)
    seen: list[tuple[str, float, float, torch.Tensor]] = []

    def loss(key, module, batch):
        opt = opt_a if key == "model" else opt_b
        seen.append((key, opt.param_groups[0]["lr"], opt.param_groups[-1]["lr"], batch[0]))
        return ((module(batch[0]) - batch[1]) ** 2).mean()

    opt_b = torch.optim.SGD(b.parameters(), lr=0.0)
    plan = _plan(tmp_path, {"model": Trainee(a, opt_a), "baseline": Trainee(b, opt_b)}, loss=loss)
    run = fit(_args(), plan)
    assert run.step == 6 and [k for k, *_ in seen] == ["model", "baseline"] * 6
    budget = Budget(6, 1000.0, warmup=3)
    for step in range(6):
        (_, lr_a, lr_a_bias, x_a), (_, lr_b, lr_b_last, x_b) = seen[2 * step], seen[2 * step + 1]
        # warm-up (s+1)/3, then the cosine over step/steps (the wall-time share is negligible here)
        factor = (step + 1) / 3 if step < 3 else 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * step / 6))
        assert lr_a == pytest.approx(0.1 * factor, rel=1e-6) and lr_a_bias == pytest.approx(0.025 * factor, rel=1e-6)
        assert lr_b == lr_b_last == pytest.approx(0.1 * factor, rel=1e-6)
        assert budget.lr_factor(step) == pytest.approx(factor, rel=1e-6)
        assert torch.equal(x_a, x_b) and torch.equal(x_a, _batch(step)[0])


def test_the_gradient_is_clipped_to_the_trainee_norm(tmp_path):
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
    plan = _plan(
        tmp_path,
        {"model": Trainee(model, torch.optim.SGD(model.parameters(), lr=0.0), clip=0.5)},
        batch=lambda step: (torch.ones(1, 1), torch.zeros(1, 1)),
        warmup=1,
    )
    fit(_args(steps=1, lr=1.0), plan)
    # d/dw (w·1 − 0)² = 2w = 6, clipped to norm 0.5; warm-up factor 1 at step 0 → w − 1.0 × 0.5
    assert model.weight.item() == pytest.approx(2.5, abs=1e-6)


def _noisy_loss(_key, module, batch):
    # consumes torch's random stream, as the detectors' proposal sampling does
    noise = torch.randn_like(batch[1]) * 0.1
    return ((module(batch[0]) - batch[1] - noise) ** 2).mean()


def _adamw_plan(tmp_path: Path, models: int = 2) -> Plan:
    torch.manual_seed(0)
    trainees = {k: Trainee(m, adamw(m.parameters(), 0.05)) for k, m in zip(("model", "baseline"), (_toy(3), _toy(4)))}
    return _plan(tmp_path, dict(list(trainees.items())[:models]), loss=_noisy_loss)


def test_a_resumed_run_ends_where_the_uninterrupted_run_ends(tmp_path):
    whole = _adamw_plan(tmp_path / "whole")
    fit(_args(steps=6), whole)
    part = _adamw_plan(tmp_path / "part")
    fit(_args(steps=3), part)
    torch.manual_seed(12345)  # a new process: its random state is not the saved one
    resumed = _adamw_plan(tmp_path / "part")
    run = fit(_args(steps=6, resume=True), resumed)
    assert run.step == 6
    for key in ("model", "baseline"):
        a, b = whole.models[key], resumed.models[key]
        for name, value in a.module.state_dict().items():
            assert torch.equal(value, b.module.state_dict()[name]), (key, name)
        moments = [t.optimizer.state_dict()["state"][0]["exp_avg"] for t in (a, b)]
        assert torch.equal(*moments)
    state = torch.load(tmp_path / "part" / "state.pt", weights_only=True)
    assert state["step"] == 6 and {"model", "baseline", "opt_model", "opt_baseline", "rng"} <= set(state)


def test_a_state_saved_with_a_lone_opt_key_resumes(tmp_path):
    plan = _adamw_plan(tmp_path, models=1)
    trainee = plan.models["model"]
    trainee.optimizer.zero_grad()
    _noisy_loss("model", trainee.module, _batch(0)).backward()
    trainee.optimizer.step()
    # the layout demo-detr saved before the harness: model, opt, step, elapsed
    torch.save(
        {"model": trainee.module.state_dict(), "opt": trainee.optimizer.state_dict(), "step": 4, "elapsed": 30.0},
        tmp_path / "state.pt",
    )
    again = _adamw_plan(tmp_path, models=1)
    run = fit(_args(steps=6, resume=True), again)
    assert run.step == 6 and again.models["model"].optimizer.state_dict()["state"][0]["step"] == 3


def test_exports_write_the_shipped_file_and_its_card_and_measure_what_was_read_back(tmp_path):
    from relviz.core.checkpoint import load_checkpoint, sha256_of

    measured = []

    def measure(run, shipped):
        measured.append((run.step, {k: v.clone() for k, v in shipped.state_dict().items()}))
        return Measured({"top1": 0.25 * len(measured)}, {"top1": 0.5}, [f"step {run.step}"])

    model = _toy(5)
    plan = _plan(tmp_path, {"model": Trainee(model, adamw(model.parameters(), 0.1))}, measure=measure)
    run = fit(_args(steps=4, export_every=1e-9), plan)  # an interim export after every step
    assert [s for s, _ in measured] == [1, 2, 3, 4, 4]
    card = json.loads(plan.weights.with_suffix(".json").read_text())
    assert card["notes"] == ["step 4"]  # the final card: no interim note
    assert card["metrics"] == {"top1": 1.25} == run.metrics and card["targets_met"] == {"top1": True}
    assert card["training"]["steps"] == 4 and card["training"]["samples_seen"] == 12
    assert card["training"]["budget"] == {"steps": 4, "minutes": 1000.0}
    assert card["architecture"] == {"width": 2} and card["sha256"] == sha256_of(plan.weights)
    # the evaluation hook saw the module as read back from the (float16) file, not the float32 one trained
    on_disk = load_checkpoint(plan.weights).state_dict
    assert all(torch.equal(measured[-1][1][k], v.float()) for k, v in on_disk.items())
    assert on_disk["weight"].dtype == torch.float16


def test_an_interim_card_says_so(tmp_path):
    cards = []

    def measure(run, shipped):
        card_path = run.plan.weights.with_suffix(".json")
        cards.append(json.loads(card_path.read_text())["notes"] if card_path.exists() else None)
        return Measured({"top1": 0.0}, {"top1": 0.5}, ["low"])

    model = _toy(6)
    plan = _plan(tmp_path, {"model": Trainee(model, adamw(model.parameters(), 0.1))}, measure=measure)
    fit(_args(steps=2, export_every=1e-9), plan)
    # each measurement sees the card written by the export before it
    assert cards == [None, ["low", INTERIM_NOTE], ["low", INTERIM_NOTE]]
    assert json.loads(plan.weights.with_suffix(".json").read_text())["notes"] == ["low"]


def test_no_train_module_imports_another_ones_private_names():
    offenders = []
    for path in sorted(TRAIN.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("relviz."):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def test_train_imports_without_qt_and_listing_the_zoo_loads_no_training_code():
    code = (
        "import sys\n"
        "import relviz.zoo\n"
        "names = list(relviz.zoo.models())\n"
        "assert 'demo-detr' in names, names\n"
        "assert not [m for m in sys.modules if m.startswith('relviz.train')], 'zoo loaded train'\n"
        "import relviz.train.recipes, relviz.train.harness, relviz.train.detr, relviz.train.rcnn\n"
        "import relviz.train.classifiers, relviz.train.evaluate, relviz.train.cards, relviz.train.__main__\n"
        "assert not [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))], 'train loaded Qt'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_a_short_recipe_run_writes_into_out_and_leaves_the_bundled_weights_alone(tmp_path, monkeypatch, capsys):
    from relviz.core.checkpoint import sha256_of
    from relviz.train.__main__ import main
    from relviz.train.common import WEIGHTS_DIR

    bundled = WEIGHTS_DIR / "demo-lrnet.safetensors"
    before = sha256_of(bundled), (WEIGHTS_DIR / "demo-lrnet.json").read_text()
    monkeypatch.setenv("RELVIZ_TRAIN_DIR", str(tmp_path / "runs"))
    argv = ["demo-lrnet", "--steps", "2", "--batch", "4", "--eval-n", "8", "--export-every", "0", "--threads", "1"]
    assert main([*argv, "--out", str(tmp_path / "w")]) == 0
    assert capsys.readouterr().out.strip().startswith("top1 ")
    assert (sha256_of(bundled), (WEIGHTS_DIR / "demo-lrnet.json").read_text()) == before
    card = json.loads((tmp_path / "w" / "demo-lrnet.json").read_text())
    assert card["sha256"] == sha256_of(tmp_path / "w" / "demo-lrnet.safetensors")
    assert card["training"]["steps"] == 2 and card["data"]["train_seed"] == 1001 and card["recipe"]["seed"] == 0
    assert card["reproduce"] == "python -m relviz.train demo-lrnet"
    assert (tmp_path / "runs" / "demo-lrnet" / "state.pt").is_file()


def test_the_card_records_the_curve_of_every_export_across_a_resume(tmp_path):
    fit(_args(steps=3), _adamw_plan(tmp_path, models=1))
    fit(_args(steps=6, resume=True), _adamw_plan(tmp_path, models=1))
    card = json.loads((tmp_path / "out" / "toy.json").read_text())
    curve = card["training"]["curve"]
    assert [point["step"] for point in curve] == [3, 6]
    assert all(point["top1"] == 0.5 and point["minutes"] >= 0 for point in curve)

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


#: the smallest DETR the window tests load as a checkpoint (ResNet-18, width 32, 6 queries, 3 classes)
TINY_DETR_CONFIG = {
    "backbone_depth": 18,
    "hidden_dim": 32,
    "nheads": 4,
    "enc_layers": 1,
    "dec_layers": 2,
    "dim_feedforward": 32,
    "num_queries": 6,
    "num_classes": 3,
}


@pytest.fixture(scope="session")
def tiny_detr(tmp_path_factory):
    """A checkpoint file of TINY_DETR_CONFIG with seeded weights, in the official {'model': …} form."""
    from relviz import zoo

    loaded = zoo.load_model("detr-r50", weights="none", device="cpu", overrides=TINY_DETR_CONFIG, seed=0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_detr.pth"
    torch.save({"model": loaded.module.state_dict()}, path)
    return path


@pytest.fixture
def window(qtbot, tmp_path):
    """The main window with a settings file of its own, shown; its workers are shut down afterwards."""
    from PySide6.QtCore import QSettings

    from relviz.app.settings import Settings
    from relviz.app.window import MainWindow

    w = MainWindow(Settings(settings=QSettings(str(tmp_path / "relviz.ini"), QSettings.Format.IniFormat)))
    qtbot.addWidget(w)
    w.resize(1440, 900)  # the window's own default, stated: the layout tests measure at this size
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.controller.shutdown()

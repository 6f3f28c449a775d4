"""Real ONNX graphs for the infer tests: small torch networks shaped like the bundled models, exported in the
test session with their model cards (the bundled models come from the model helpers' branches)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from ecgcore.export.card import ModelCard, write_card

AAMI = ["N", "S", "V", "F", "Q"]


def _export(module, example, folder: Path, card: ModelCard, input_names=("x",)) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    dyn = {n: {0: "batch" if i == 0 else f"rows{i}"} for i, n in enumerate(input_names)}
    dyn["y"] = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(module.eval(), example, str(folder / "model.onnx"), input_names=list(input_names),
                          output_names=["y"], dynamic_axes=dyn, dynamo=False)
    write_card(card, folder)
    return folder


def _torch():
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    return torch


class _Beats:
    """Conformer-shaped: (B, 3, 32, 187, 1) channels-last -> per-beat CNN -> sequence -> 5 logits."""

    @staticmethod
    def build():
        torch = _torch()

        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
                self.fc = torch.nn.Linear(12, 5)

            def forward(self, x):
                b = x.shape[0]
                z = x.permute(0, 1, 4, 2, 3).reshape(b * 3, 1, 32, 187)
                z = torch.relu(self.conv(z)).mean(dim=(2, 3)).reshape(b, 12)
                return self.fc(z * 10.0)

        return M()


@pytest.fixture(scope="session")
def beats_model(tmp_path_factory):
    """(folder, torch module, card) of a beats-scalograms classifier with per-column normalisation."""
    torch = _torch()
    m = _Beats.build()
    rng = np.random.default_rng(1)
    norm = {"mean": (0.05 + 0.01 * rng.random(187)).tolist(), "scale": (0.5 + rng.random(187)).tolist()}
    card = ModelCard(name="test-beats", task="classification", framework="pytorch",
                     inputs=[{"name": "x", "shape": [None, 3, 32, 187, 1], "dtype": "float32"}],
                     outputs=[{"name": "y", "shape": [None, 5], "dtype": "float32", "activation": "softmax"}],
                     fs=360.0, classes=AAMI,
                     preprocessing={"kind": "beats-scalograms", "before": 93, "after": 93, "scales": [1, 32],
                                    "wavelet": "morl", "lead": 0, "variant": "conformer", "sequence_length": 3,
                                    "normalization": norm})
    folder = _export(m, (torch.randn(2, 3, 32, 187, 1),), tmp_path_factory.mktemp("beats"), card)
    return folder, m, card


@pytest.fixture(scope="session")
def segments_model(tmp_path_factory):
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 4, 5, padding=2)
            self.fc = torch.nn.Linear(4 * 900, 2)

        def forward(self, x):
            z = torch.nn.functional.max_pool1d(torch.relu(self.conv(x)), 4)
            return self.fc(z.flatten(1))

    m = M()
    card = ModelCard(name="test-segments", task="classification", framework="pytorch",
                     inputs=[{"name": "x", "shape": [None, 1, 3600], "dtype": "float32"}],
                     outputs=[{"name": "y", "shape": [None, 2], "dtype": "float32"}], fs=360.0,
                     classes=["Normal", "Abnormal"],
                     preprocessing={"kind": "segments", "window_s": 10.0, "overlap": 0.5, "band": [0.5, 50.0],
                                    "order": 5, "lead": 0, "seed_compat": False})
    folder = _export(m, (torch.randn(2, 1, 3600),), tmp_path_factory.mktemp("segments"), card)
    return folder, m, card


@pytest.fixture(scope="session")
def denoiser_model(tmp_path_factory):
    torch = _torch()

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 1, 9, padding=4, bias=True)

        def forward(self, x):
            return x - 0.3 * self.conv(x)

    m = M()
    card = ModelCard(name="test-denoiser", task="denoising", framework="pytorch",
                     inputs=[{"name": "x", "shape": [None, 1, 1300], "dtype": "float32"}],
                     outputs=[{"name": "y", "shape": [None, 1, 1300], "dtype": "float32"}], fs=130.0,
                     preprocessing={"kind": "denoise-pairs", "fs": 130.0, "length": 1300, "lead": 0,
                                    "band": [0.5, 45.0], "normalization": "signal"})
    folder = _export(m, (torch.randn(2, 1, 1300),), tmp_path_factory.mktemp("denoiser"), card)
    return folder, m, card


@pytest.fixture(scope="session")
def heartid_model(tmp_path_factory):
    torch = _torch()

    class M(torch.nn.Module):
        """HeartID-shaped: a window and a cancelable key (one row, broadcast) -> an embedding."""

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv1d(1, 4, 7)
            self.fc = torch.nn.Linear(4 + 16, 8)

        def forward(self, x, key):
            feat = torch.relu(self.conv(x[:, None, :])).mean(dim=2)
            return self.fc(torch.cat([feat, key.expand(x.shape[0], -1)], dim=1))

    m = M()
    card = ModelCard(name="test-heartid", task="embedding", framework="pytorch",
                     inputs=[{"name": "x", "shape": [None, 1000], "dtype": "float32"},
                             {"name": "key", "shape": [None, 16], "dtype": "float32"}],
                     outputs=[{"name": "y", "shape": [None, 8], "dtype": "float32"}], fs=200.0,
                     preprocessing={"kind": "heartid", "fs": 200.0, "window": 1000, "stride": 500, "lead": 0,
                                    "band": [0.5, 40.0]})
    folder = _export(m, (torch.randn(2, 1000), torch.randn(1, 16)), tmp_path_factory.mktemp("heartid"), card,
                     input_names=("x", "key"))
    return folder, m, card


@pytest.fixture(scope="session")
def rec100(mini_dir):
    from ecgcore.io import read_record

    return read_record(mini_dir / "100")


@pytest.fixture(scope="session")
def mini_dir() -> Path:
    """The bundled 5-minute MIT-BIH excerpts (records 100, 119, 208): real data, fast."""
    import ecgcore

    return Path(ecgcore.__file__).parent / "data" / "mitdb"


"""CNN-Conformer AAMI beat classifier on 3-beat Morlet-scalogram sequences (Keras; SPEC §4).

``build_model`` / ``ConformerConfig`` (the seed's network and best hyperparameters, plus the three ablations),
``train`` (protocols ``seed`` and ``inter-patient``), ``evaluate`` (AAMI metrics and plots), ``export``
(ONNX + model card). TensorFlow is imported only when one of these runs.
"""
from .config import ConformerConfig
from ._evaluate import evaluate
from ._export import export
from .model import build_model
from ._train import train

__all__ = ["ConformerConfig", "build_model", "train", "evaluate", "export"]

"""Model cards and ONNX helpers shared by every model family and by ``ecgcore infer``.

Nothing here imports a training framework: a card is JSON, parity checks use onnxruntime only.
"""
from .card import ModelCard, read_card, write_card, bundled_models_dir, list_bundled, resolve_model
from .onnx_check import onnx_parity

__all__ = ["ModelCard", "read_card", "write_card", "bundled_models_dir", "list_bundled", "resolve_model",
           "onnx_parity"]

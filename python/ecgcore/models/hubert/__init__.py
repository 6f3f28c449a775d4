"""HuBERT-ECG in plain PyTorch (SPEC 5.1-5.8): masked pseudo-label pretraining, fine-tuning, testing, ONNX export.

Modules: ``config`` (sizes, no torch), ``inputs`` (the seed's input contract and dataset tables, NumPy +
``ecgcore.dsp`` only, so ``ecgcore infer`` can rebuild a model input from a raw record), ``metrics`` (NumPy test
protocol with stratified bootstrap CIs), ``model`` / ``pretrain`` / ``finetune`` / ``export`` (torch, imported lazily),
``cli`` (``ecgcore train hubert pretrain|finetune|dump|cluster``, ``ecgcore evaluate hubert``, ``ecgcore export hubert``).
"""
from .config import SIZES, HubertConfig

__all__ = ["HubertConfig", "SIZES"]

"""Model families, one framework each, imported lazily (``import ecgcore`` never loads a framework).

- ``ecgcore.models.denoiser``  — Heartify Attention U-Net (PyTorch)
- ``ecgcore.models.attention`` — CNN + 8-head attention Normal/Abnormal classifier (PyTorch)
- ``ecgcore.models.conformer`` — CNN-Conformer AAMI beat classifier on scalogram sequences (Keras)
- ``ecgcore.models.heartid``   — cancelable ECG biometrics (MLX)
- ``ecgcore.models.hubert``    — HuBERT-ECG self-supervised pretraining and fine-tuning (PyTorch)

Each holds ``config.py`` (dataclass with the seed's defaults), ``model.py``, ``train.py``, ``export.py`` and
``cli.py`` (click commands ``train``, ``evaluate``, ``export``[, ``tune``] picked up by ``ecgcore train NAME``).
"""
MODEL_FAMILIES = ("denoiser", "attention", "conformer", "heartid", "hubert")

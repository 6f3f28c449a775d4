"""``train``: one entry for both HuBERT-ECG stages, dispatching on ``config.stage``."""
from __future__ import annotations

from .config import HubertTrainConfig

__all__ = ["train"]


def train(data_dir, run_dir, config: HubertTrainConfig | None = None, *, resume: bool = True, progress: bool = True,
          log=print) -> dict:
    """Pretrain (``config.stage == "pretrain"``) or fine-tune (default) in the shared run folder; see
    :func:`ecgcore.models.hubert.pretrain` and :func:`ecgcore.models.hubert.finetune`."""
    config = config or HubertTrainConfig()
    if config.stage == "pretrain":
        from ._pretrain import pretrain

        return pretrain(data_dir, run_dir, config, resume=resume, progress=progress, log=log)
    from ._finetune import finetune

    return finetune(data_dir, run_dir, config, resume=resume, progress=progress, log=log)

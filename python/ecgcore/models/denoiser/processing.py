"""Framework-free pre/post-processing of the denoiser (SPEC §2.2), shared by torch, ONNX infer and serve.

Imports NumPy only, so ``ecgcore.infer`` / ``ecgcore.serve`` can run the exported graph without torch.

Pipeline: z-score the whole signal (population std; std 0 → 1), cut it into 1300-sample chunks, zero-pad
the last short chunk, run the network on ``(n_chunks, 1, 1300)``, drop the padding, concatenate, and —
unlike the seed, which answers in z-score units — map the result back to the input's scale
(``y * std + mean``). ``seed_compat=True`` keeps the seed's z-score output.
"""
from __future__ import annotations

# Moved to the recipes (``ecgcore infer`` and ``serve`` import no model package); re-exported here.
from ...pipelines.recipes.denoise_chunks import chunk, denoise_array, restore_scale, unchunk, zscore
from .config import CHUNK_SIZE

__all__ = ["zscore", "chunk", "unchunk", "restore_scale", "denoise_array", "CHUNK_SIZE"]

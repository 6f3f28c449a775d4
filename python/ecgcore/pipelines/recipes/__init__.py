"""Dataset recipes for ``ecgcore preprocess``: each turns raw records into one model's training data."""
from __future__ import annotations

from .base import Recipe

__all__ = ["Recipe", "get_recipe", "recipe_names"]

# name -> (module, class); modules are imported on first use.
_RECIPES = {
    "beats-scalograms": ("ecgcore.pipelines.recipes.beats_scalograms", "BeatsScalograms"),
    "denoise-pairs": ("ecgcore.pipelines.recipes.denoise_pairs", "DenoisePairs"),
    "denoise-ptbxl": ("ecgcore.pipelines.recipes.denoise_pairs", "DenoisePTBXL"),
    "heartid": ("ecgcore.pipelines.recipes.heartid", "HeartIDWindows"),
    "hubert-features": ("ecgcore.pipelines.recipes.hubert", "HubertFeatures"),
    "hubert-labels": ("ecgcore.pipelines.recipes.hubert", "HubertLabels"),
    "segments": ("ecgcore.pipelines.recipes.segments", "Segments"),
    "segments-ptbxl": ("ecgcore.pipelines.recipes.segments", "SegmentsPTBXL"),
    "tfrecords": ("ecgcore.pipelines.recipes.tfrecords", "TFRecords"),
}


def recipe_names() -> list[str]:
    return sorted(_RECIPES)


def get_recipe(name: str) -> Recipe:
    import importlib

    if name not in _RECIPES:
        raise ValueError(f"unknown recipe {name!r}; available: {', '.join(recipe_names())}")
    mod, cls = _RECIPES[name]
    return getattr(importlib.import_module(mod), cls)()

"""The ``ecgcore`` command line (click). Thin: every verb calls the library; no logic of its own here.

Training frameworks are never imported at start-up: ``ecgcore --help`` stays fast and works on a
machine with only the base install.
"""
from __future__ import annotations

import importlib
import importlib.util

import click

from ._version import __version__

# Verbs implemented in ecgcore.commands.<module>:<attribute>; loaded only when present and invoked.
_PLUGIN_COMMANDS = {
    "info": ("ecgcore.commands.data", "info"),
    "filter": ("ecgcore.commands.data", "filter_cmd"),
    "demo": ("ecgcore.commands.data", "demo"),
    "preprocess": ("ecgcore.commands.data", "preprocess"),
    "peaks": ("ecgcore.commands.peaks", "peaks"),
    "features": ("ecgcore.commands.features", "features"),
    "cluster": ("ecgcore.commands.cluster", "cluster"),
    "train": ("ecgcore.commands.model_verbs", "train"),
    "evaluate": ("ecgcore.commands.model_verbs", "evaluate"),
    "export": ("ecgcore.commands.model_verbs", "export"),
    "tune": ("ecgcore.commands.model_verbs", "tune"),
    "infer": ("ecgcore.commands.infer", "infer"),
    "models": ("ecgcore.commands.infer", "models"),
    "infer-report": ("ecgcore.commands.infer", "infer_report"),
    "noise-stress": ("ecgcore.commands.noise", "noise_stress_cmd"),
    "enroll": ("ecgcore.commands.heartid", "enroll"),
    "verify": ("ecgcore.commands.heartid", "verify"),
    "revoke": ("ecgcore.commands.heartid", "revoke"),
    "serve": ("ecgcore.commands.serve", "serve"),
    "app": ("ecgcore.commands.app", "app"),
}


def _has_module(mod: str) -> bool:
    try:
        return importlib.util.find_spec(mod) is not None
    except ModuleNotFoundError:  # a parent package is not there (yet)
        return False


class _Group(click.Group):
    def list_commands(self, ctx):
        names = set(super().list_commands(ctx))
        for name, (mod, _) in _PLUGIN_COMMANDS.items():
            if _has_module(mod):
                names.add(name)
        return sorted(names)

    def get_command(self, ctx, name):
        cmd = super().get_command(ctx, name)
        if cmd is not None or name not in _PLUGIN_COMMANDS:
            return cmd
        mod, attr = _PLUGIN_COMMANDS[name]
        if not _has_module(mod):
            return None
        return getattr(importlib.import_module(mod), attr)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecgcore")
def main():
    """ecgcore: fast ECG processing from raw archives to trained, exported, served models.

    Signal work (filtering, R-peaks, beats, scalograms, MFCC, k-means) runs in a C++ core on all cores.
    Run `ecgcore demo` for a tour on the bundled MIT-BIH excerpts, `ecgcore COMMAND --help` for details.
    """


if __name__ == "__main__":  # pragma: no cover - python -m ecgcore.cli
    main()

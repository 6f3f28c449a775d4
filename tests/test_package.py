"""Package hygiene: light imports, one version, public API re-exported."""
from __future__ import annotations

import json
import subprocess
import sys

import ecgcore

HEAVY = ("torch", "tensorflow", "mlx", "keras", "jax")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_does_not_load_training_frameworks():
    mods = _modules_after("import ecgcore, ecgcore.dsp, ecgcore.io")
    assert not {m for m in mods if m.split(".")[0] in HEAVY}


def test_cli_help_does_not_load_training_frameworks():
    code = ("from click.testing import CliRunner\nfrom ecgcore.cli import main\n"
            "r = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0, r.output")
    mods = _modules_after(code)
    assert not {m for m in mods if m.split(".")[0] in HEAVY}


def test_version_single_source():
    from ecgcore import _core
    from ecgcore._version import __version__

    assert ecgcore.__version__ == __version__ == _core.__version__
    from importlib.metadata import version

    assert version("ecgcore") == __version__


def test_public_api():
    for name in ("bandpass", "butter", "sosfiltfilt", "filtfilt", "resample_poly", "decimate", "iirnotch"):
        assert name in ecgcore.dsp.__all__ and callable(getattr(ecgcore.dsp, name))
    for name in ("read_record", "read_annotations", "write_annotations", "Record"):
        assert name in ecgcore.io.__all__
    assert ecgcore.read_record is ecgcore.io.read_record


def test_native_errors_become_value_error():
    import pytest

    with pytest.raises(ValueError):
        ecgcore.dsp.butter(4, (10, 5), fs=100)

"""The checked-in type stubs of the compiled module (python/ecgcore/_core.pyi) match the module.

Two checks: every public name of ecgcore._core is in the stubs with the same parameters (names, order,
defaults), read from pybind11's signature lines -- always runs; and regenerating the stubs with
tools/generate_core_stubs.py gives the checked-in text byte for byte -- needs pybind11-stubgen, the version
the file was generated with (its first line says which).
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.resources
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ecgcore._core as core

ROOT = Path(__file__).resolve().parents[1]
STUBS = ROOT / "python" / "ecgcore" / "_core.pyi"
TOOL = ROOT / "tools" / "generate_core_stubs.py"
REGENERATE = "python tools/generate_core_stubs.py"


def _parameters(fn: ast.FunctionDef) -> list[tuple[str, str | None]]:
    """(name, default source or None) of every parameter, in order."""
    a = fn.args
    positional = a.posonlyargs + a.args
    defaults = [None] * (len(positional) - len(a.defaults)) + [ast.unparse(d) for d in a.defaults]
    params = [(p.arg, d) for p, d in zip(positional, defaults)]
    if a.vararg:
        params.append(("*" + a.vararg.arg, None))
    params += [(p.arg, None if d is None else ast.unparse(d)) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
    if a.kwarg:
        params.append(("**" + a.kwarg.arg, None))
    return params


def _stub_functions() -> dict[str, ast.FunctionDef]:
    tree = ast.parse(STUBS.read_text(encoding="utf-8"))
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _module_signature(name: str) -> ast.FunctionDef:
    """pybind11's signature line (first docstring line, 'name(a: T, b: T = 0) -> R') parsed as a def."""
    first = (getattr(core, name).__doc__ or "").splitlines()[0]
    assert first.startswith(name + "("), f"{name}: no signature line in its docstring: {first!r}"
    assert "Overloaded function" not in (getattr(core, name).__doc__ or ""), f"{name}: overloads are not handled"
    return ast.parse(f"def {first}: ...").body[0]


def _public_names() -> list[str]:
    return sorted(n for n in dir(core) if not n.startswith("_"))


def test_stubs_and_marker_are_in_the_package():
    package = importlib.resources.files("ecgcore")
    assert package.joinpath("py.typed").is_file(), "python/ecgcore/py.typed is missing (PEP 561 marker)"
    assert package.joinpath("_core.pyi").is_file(), f"python/ecgcore/_core.pyi is missing: run {REGENERATE}"


def test_every_public_name_has_a_stub_with_the_same_parameters():
    stubs = _stub_functions()
    functions = [n for n in _public_names() if callable(getattr(core, n))]
    missing = sorted(set(functions) - set(stubs))
    extra = sorted(set(stubs) - set(functions))
    assert not missing and not extra, (f"_core.pyi is out of date ({REGENERATE}): missing {missing}, "
                                       f"not in the module {extra}")
    for name in functions:
        assert _parameters(stubs[name]) == _parameters(_module_signature(name)), (
            f"_core.{name}: parameters differ from _core.pyi; run {REGENERATE}")
    attributes = [n for n in _public_names() if not callable(getattr(core, n))]
    text = STUBS.read_text(encoding="utf-8")
    for name in attributes + ["__version__"]:
        assert re.search(rf"^{re.escape(name)}\b", text, flags=re.MULTILINE), f"_core.{name} is not in _core.pyi"


def test_stubs_regenerate_identically(tmp_path):
    try:
        installed = {"stubgen": importlib.metadata.version("pybind11-stubgen"),
                     "pybind11": importlib.metadata.version("pybind11")}
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("pybind11-stubgen is not installed (pip install pybind11-stubgen); "
                    "the parameter check above still ran")
    header = STUBS.read_text(encoding="utf-8").splitlines()[0]
    m = re.search(r"pybind11-stubgen (\S+), pybind11 (\S+)\)", header)
    assert m, f"_core.pyi has no generator header; run {REGENERATE}"
    recorded = {"stubgen": m.group(1), "pybind11": m.group(2)}
    if recorded != installed:
        pytest.skip(f"_core.pyi was generated with pybind11-stubgen {recorded['stubgen']} / pybind11 "
                    f"{recorded['pybind11']}, this environment has {installed['stubgen']} / {installed['pybind11']}")
    subprocess.run([sys.executable, str(TOOL), "--output", str(tmp_path)], check=True, capture_output=True)
    regenerated = (tmp_path / "_core.pyi").read_text(encoding="utf-8")
    assert regenerated == STUBS.read_text(encoding="utf-8"), f"_core.pyi is out of date: run {REGENERATE}"

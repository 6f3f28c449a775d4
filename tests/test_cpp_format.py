"""C++ files kept clang-format clean (.clang-format at the repository root).

The older sources predate the .clang-format file and are not reformatted wholesale (that would touch every
line); the files below were written or split since and must stay formatted. Add a file here when you create
it or reformat it whole (``clang-format -i FILE``). Needs clang-format (Debian: apt-get install clang-format);
the files were formatted with clang-format 14, and another major version that formats them differently skips
with a reason instead of failing.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORMATTED_WITH = 14  # clang-format major version

FORMATTED = [
    "bindings/cluster_scores.cpp",
    "bindings/common.hpp",
    "cpp/include/ecgcore/cluster_scores.hpp",
    "cpp/include/ecgcore/detail/cluster_rows.hpp",
    "cpp/include/ecgcore/detail/config.hpp",
    "cpp/include/ecgcore/filter.hpp",
    "cpp/include/ecgcore/filter_design.hpp",
    "cpp/include/ecgcore/filter_resample.hpp",
    "cpp/include/ecgcore/filter_sos.hpp",
    "cpp/src/cluster_scores.cpp",
    "cpp/src/filter_design.cpp",
    "cpp/src/filter_resample.cpp",
    "cpp/src/filter_sos.cpp",
]


def test_new_cpp_files_are_clang_formatted():
    exe = shutil.which("clang-format")
    if exe is None:
        pytest.skip("needs clang-format (Debian: apt-get install clang-format)")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    major = int(re.search(r"version (\d+)", version).group(1))
    assert (ROOT / ".clang-format").is_file(), ".clang-format is missing at the repository root"
    missing = [f for f in FORMATTED if not (ROOT / f).is_file()]
    assert not missing, f"listed in FORMATTED but not in the tree: {missing}"
    res = subprocess.run([exe, "--dry-run", "--Werror", *FORMATTED], cwd=ROOT, capture_output=True, text=True)
    if res.returncode != 0:
        if major != FORMATTED_WITH:
            pytest.skip(f"clang-format {major} formats these files differently from clang-format {FORMATTED_WITH}, "
                        "the version they were formatted with")
        unformatted = sorted(set(re.findall(r"^(\S+?):\d+:\d+: error", res.stderr, flags=re.MULTILINE)))
        pytest.fail(f"not clang-format clean: {unformatted or res.stderr[:2000]}; run clang-format -i on them")

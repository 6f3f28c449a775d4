"""Access to the private compiled module with a helpful error when it is missing."""
from __future__ import annotations

try:
    from . import _core  # noqa: F401
except ImportError as exc:  # pragma: no cover - only when the package was not built
    raise ImportError(
        "ecgcore's compiled core (ecgcore._core) is missing: install the package with "
        "`pip install .` (or `pip install --no-build-isolation -e .` for development)"
    ) from exc

core = _core


def threads(workers: int | None) -> int:
    """Normalise a ``workers`` argument: None or <=0 -> all cores (0 for C++)."""
    if workers is None:
        return 0
    workers = int(workers)
    return workers if workers > 0 else 0

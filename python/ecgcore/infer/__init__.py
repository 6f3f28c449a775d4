"""``ecgcore infer``: batch scoring of whole archives with ONNX Runtime and the bundled models.

No training framework is imported here (torch, tensorflow, mlx): networks are ``model.onnx`` files with a
``model.json`` card, and each card's preprocessing is the ``ecgcore preprocess`` recipe's own per-record
transform on the C++ core, so inference sees exactly what training saw.

>>> from ecgcore.infer import Scorer, score_records, denoise_signal
>>> s = Scorer("beats-aami")                      # doctest: +SKIP
>>> pred = s.predict_record(ecgcore.read_record("mitdb/100"))   # doctest: +SKIP
>>> pred.rows[0]["class"], pred.summary["burden_pct"]          # doctest: +SKIP
"""
from .batch import FORMATS, InferSummary, discover, score_records
from .core import RecordPrediction, Scorer, denoise_signal, make_session, release_memory
from .preprocess import KINDS, Prepared, prepare

__all__ = ["FORMATS", "KINDS", "InferSummary", "Prepared", "RecordPrediction", "Scorer", "denoise_signal",
           "discover", "make_session", "prepare", "release_memory", "score_records"]

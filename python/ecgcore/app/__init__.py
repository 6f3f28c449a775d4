"""``ecgcore app``: the ECG diagnosis web app (upload ECGs, see beats, rate, rhythm, intervals, model
outputs and an attention overlay, download a PDF report).

Framework-free: models run through ``ecgcore.infer`` (ONNX Runtime); torch, tensorflow and mlx are never
imported. The web layer (FastAPI, uvicorn, python-multipart) and reportlab are the ``serve`` extra and are
imported only by :func:`create_app` / :func:`build_pdf`.
"""
from .analysis import EcgAnalysis, analyse_record, plain_summary
from .measure import measure_record, rhythm_label, rhythm_lead
from .models import ModelSuite
from .report import build_pdf, llm_narrative
from .server import create_app
from .uploads import UploadedFile, UploadError, parse_uploads, split_npy

__all__ = ["EcgAnalysis", "ModelSuite", "UploadError", "UploadedFile", "analyse_record", "build_pdf",
           "create_app", "llm_narrative", "measure_record", "parse_uploads", "plain_summary", "rhythm_label",
           "rhythm_lead", "split_npy"]

"""A fast reader of WFDB (MIT-format) annotation files, field for field what ``wfdb.rdann`` returns.

``wfdb.rdann`` walks the file byte pair by byte pair in numpy scalars and imports pandas; over an archive
that costs more than decoding the signals. This reader walks the 16-bit words as Python ints and returns
the same fields. Anything it does not reproduce exactly (custom label definitions, definition notes that
do not lead the file, annotation codes outside WFDB's standard table, a repeated modifier, a malformed file) makes it
return ``None`` so that the caller falls back to wfdb.

Format (WFDB ``annot(5)``): each word is ``code << 10 | data``. ``code`` 1-49 is an annotation whose time is
``data`` samples after the previous one; ``SKIP`` (59) adds the signed 32-bit interval in the next two words
(high word first); ``NUM`` (60), ``SUB`` (61) and ``CHN`` (62) set the annotation's number, subtype (signed
bytes) and channel (unsigned byte) from the low byte; ``AUX`` (63) is followed by ``data & 0xFF`` bytes
of note, padded to a word. ``chan`` and ``num`` carry over from the previous annotation, ``subtype`` and
``aux_note`` do not. As wfdb does, annotations of code 0 and NOTE (22) annotations at sample 0 (file
definitions; a leading ``## time resolution: FS`` note gives the sampling rate) are dropped.
"""
from __future__ import annotations

import math
import re

import numpy as np

__all__ = ["ANNOTATION_SYMBOLS", "parse_annotation_bytes", "wfdb_rdann_would_hang"]

# WFDB's standard annotation codes (ecgcodes.h), as wfdb.io.annotation.ann_label_table maps them.
ANNOTATION_SYMBOLS = {
    0: " ", 1: "N", 2: "L", 3: "R", 4: "a", 5: "V", 6: "F", 7: "J", 8: "A", 9: "S", 10: "E", 11: "j",
    12: "/", 13: "Q", 14: "~", 16: "|", 18: "s", 19: "T", 20: "*", 21: "D", 22: '"', 23: "=", 24: "p",
    25: "B", 26: "^", 27: "t", 28: "+", 29: "u", 30: "?", 31: "!", 32: "[", 33: "]", 34: "e", 35: "n",
    36: "@", 37: "x", 38: "f", 39: "(", 40: ")", 41: "r",
}

_TIME_RESOLUTION = re.compile(r"## time resolution: (\d+\.?\d*)")
_SKIP, _NUM, _SUB, _CHN, _AUX, _NOTE = 59, 60, 61, 62, 63, 22


def _signed_byte(v: int) -> int:
    return v - 256 if v > 127 else v


def parse_annotation_bytes(data: bytes) -> dict | None:
    """Decode an MIT-format annotation file.

    Parameters
    ----------
    data : the file's bytes.

    Returns
    -------
    dict with ``sample`` (n,) int64, ``symbol`` (n,) str array, ``aux_note`` list of n str, ``chan``,
    ``subtype`` and ``num`` (n,) int64, ``fs`` (from a ``## time resolution`` note, else None) -- or None where
    only wfdb reproduces wfdb (see the module docstring).
    """
    if len(data) % 2 or len(data) < 2:
        return None
    w = np.frombuffer(data, dtype="<u2").tolist()
    n = len(w)
    samples, codes, subs, chans, nums, auxs = [], [], [], [], [], []
    t = 0
    chan = num = 0
    i = 0
    try:
        while i < n - 1:
            word = w[i]
            code = word >> 10
            diff = 0
            while code == _SKIP:
                skip = (w[i + 1] << 16) | w[i + 2]
                diff += skip - (1 << 32) if skip >= (1 << 31) else skip
                i += 3
                word = w[i]
                code = word >> 10
            if code not in ANNOTATION_SYMBOLS:
                return None
            t += diff + (word & 0x3FF)
            i += 1
            sub, aux = 0, ""
            seen = 0
            word = w[i]
            field = word >> 10
            while field > _SKIP:
                bit = 1 << (field - _NUM)
                if seen & bit:
                    return None  # a modifier given twice: wfdb's lists would go out of step
                seen |= bit
                if field == _SUB:
                    sub = _signed_byte(word & 0xFF)
                elif field == _CHN:
                    chan = word & 0xFF
                elif field == _NUM:
                    num = _signed_byte(word & 0xFF)
                else:  # AUX
                    length = word & 0xFF
                    n_words = (length + 1) // 2
                    if i + 1 + n_words > n:
                        return None
                    aux = data[2 * (i + 1):2 * (i + 1) + length].decode("latin-1")
                    i += n_words
                i += 1
                word = w[i]
                field = word >> 10
            samples.append(t)
            codes.append(code)
            subs.append(sub)
            chans.append(chan)
            nums.append(num)
            auxs.append(aux)
    except IndexError:  # a truncated file: wfdb raises, let it say why
        return None
    sample = np.array(samples, dtype=np.int64)
    code = np.array(codes, dtype=np.int64)
    definitions = (sample == 0) & (code == _NOTE)
    fs = None
    n_def = int(definitions.sum())
    if n_def:
        # wfdb reads the definitions from the first n_def notes of the file: the same thing when they lead it.
        if not definitions[:n_def].all() or any(a == "## annotation type definitions" for a in auxs[:n_def]):
            return None
        for a in auxs[:n_def]:
            m = _TIME_RESOLUTION.search(a) if a.startswith("## ") else None
            if m:
                fs = float(m.group(1))
                if not math.isfinite(fs):
                    return None  # wfdb raises on it: let it say why
                fs = int(fs) if round(fs, 8) == float(int(fs)) else fs
                break
    keep = (code != 0) & ~definitions
    if not keep.all():
        idx = np.flatnonzero(keep)
        sample, code = sample[idx], code[idx]
        subs, chans, nums = [subs[k] for k in idx], [chans[k] for k in idx], [nums[k] for k in idx]
        auxs = [auxs[k] for k in idx]
    return {"sample": sample, "symbol": np.asarray([ANNOTATION_SYMBOLS[c] for c in code.tolist()]),
            "aux_note": auxs, "chan": np.array(chans, dtype=np.int64), "subtype": np.array(subs, dtype=np.int64),
            "num": np.array(nums, dtype=np.int64), "fs": fs}


def wfdb_rdann_would_hang(data: bytes) -> str | None:
    """The note on which ``wfdb.rdann`` (wfdb-python 4.x) would loop forever, or None.

    ``interpret_defintion_annotations`` walks the notes of the file's definition annotations (NOTEs at sample
    0) and never moves past a note that starts with ``"## "`` and is neither the first time resolution nor
    ``"## annotation type definitions"`` (e.g. a second ``## time resolution``, or any other ``## `` comment).
    This replays wfdb's own parse (its module functions) and that loop without running it.
    """
    try:
        from wfdb.io import annotation as wa

        parse, special, rx_fs, rx_label = wa.proc_ann_bytes, wa.get_special_inds, wa.rx_fs, wa.rx_custom_label
    except (ImportError, AttributeError):
        return None
    try:
        filebytes = np.frombuffer(data, dtype=np.uint8).reshape(-1, 2)
        sample, label_store, _, _, _, aux_note = parse(filebytes, None)
        n_def = len(special(sample, label_store, aux_note)[0])
    except Exception:
        return None  # wfdb raises on this file too, before the loop
    fs = None
    i = 0
    try:
        while i < n_def:
            note = aux_note[i]
            if not note.startswith("## "):
                i += 1
                continue
            if not fs:
                found = rx_fs.findall(note)
                if found:
                    fs = float(found[0])
                    if not math.isfinite(fs):
                        return None  # wfdb's int(fs) raises
                    i += 1
                    continue
            if note != "## annotation type definitions":
                return note
            i += 1
            while aux_note[i] != "## end of definitions":
                if not rx_label.findall(aux_note[i]):
                    return None  # wfdb raises IndexError here
                i += 1
            i += 1
    except (IndexError, AttributeError):
        return None  # wfdb raises too
    return None

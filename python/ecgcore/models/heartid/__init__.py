"""HeartID (SPEC §1): cancelable ECG biometrics in MLX, with an MLX-free product path.

Modules (only ``model``, ``losses``, ``train`` and ``cli``'s train/evaluate commands import MLX):

- ``config``     the seed's hyperparameters (:class:`HeartIDConfig`)
- ``preprocess`` the ``heartid`` recipe's per-record transform (record -> z-scored 1000-sample windows)
- ``keys``       unit-norm binary keys drawn with :mod:`secrets`, key files
- ``data``       windows of ``ecgcore preprocess heartid`` folders, subject-disjoint splits, triplets
- ``model``      the seed's network with the MLX layout bugs fixed
- ``losses``     the seed's 4-term triplet loss and the original Secure Triplet Loss
- ``train``      AdamW training writing ``heartid_model.npz`` + ``optimizer.safetensors`` (resumable)
- ``metrics``    EER, FAR/FRR operating points, DET curve, rank-1, cancelability and unlinkability
- ``export``     the ONNX graph rebuilt from the weights with ``onnx.helper`` (no MLX needed to run it)
- ``product``    ``ecgcore enroll / verify / revoke`` on onnxruntime + SQLite
"""

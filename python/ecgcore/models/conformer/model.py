"""Keras networks of the Conformer seed (SPEC §4.5): a shared per-beat 2-D CNN over 3-beat scalogram sequences,
then a Conformer (Main_Model), attention-only, LSTM or pooling head.

Built with the functional API plus two small registered layers (:func:`layers_module`), so checkpoints load
as ``.keras`` in safe mode and the graph converts to ONNX with tf2onnx.
"""
from __future__ import annotations

from .config import ConformerConfig

__all__ = ["build_model", "beat_cnn", "beat_embeddings", "sequence_head", "conformer_block", "compile_model", "custom_objects"]

_LAYERS = None


def layers_module():
    """``(PositionEmbedding, GLU)``, defined once Keras is imported (``import ecgcore`` stays framework-free)."""
    global _LAYERS
    if _LAYERS is not None:
        return _LAYERS
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="ecgcore")
    class PositionEmbedding(keras.layers.Layer):
        """Learned absolute position embedding of a length-``length`` sequence, broadcast over the batch.

        (batch, length, dim) → (batch, length, dim): the embedding rows themselves (the seed's
        ``Embedding(3, embed)(range(3))``), ready to be added to the query.
        """

        def __init__(self, length, dim, **kwargs):
            super().__init__(**kwargs)
            self.length, self.dim = int(length), int(dim)

        def build(self, input_shape):
            self.embeddings = self.add_weight(shape=(self.length, self.dim), initializer="uniform",
                                              name="embeddings")

        def call(self, x):
            return ops.zeros_like(x) + self.embeddings[None, :, :]

        def get_config(self):
            return {**super().get_config(), "length": self.length, "dim": self.dim}

    @keras.saving.register_keras_serializable(package="ecgcore")
    class GLU(keras.layers.Layer):
        """Gated linear unit over the last axis: first half · sigmoid(second half)."""

        def call(self, x):
            a, b = ops.split(x, 2, axis=-1)
            return a * ops.sigmoid(b)

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], input_shape[-1] // 2)

    _LAYERS = (PositionEmbedding, GLU)
    return _LAYERS


def custom_objects() -> dict:
    pe, glu = layers_module()
    return {"ecgcore>PositionEmbedding": pe, "ecgcore>GLU": glu}


def beat_cnn(cfg: ConformerConfig):
    """The per-beat CNN: (32, 187, 1) → (embed_dim,). 32×187 → 16×93 → 8×46 → global average."""
    import keras
    from keras import layers

    inp = keras.Input((cfg.height, cfg.width, 1), name="beat")
    x = inp
    for i, filters in enumerate((32, 64, cfg.embed_dim)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        if i < 2:
            x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, x, name="beat_cnn")


def _feed_forward(x, cfg, dim, name):
    from keras import layers

    y = layers.LayerNormalization(name=f"{name}_ln")(x)
    y = layers.Dense(cfg.ff_dim, activation="swish", name=f"{name}_dense1")(y)
    y = layers.Dropout(cfg.dropout, name=f"{name}_drop1")(y)
    y = layers.Dense(dim, name=f"{name}_dense2")(y)
    return layers.Dropout(cfg.dropout, name=f"{name}_drop2")(y)


def _mhsa(x, positions, cfg, dim, name):
    """Seed MHSA: the learned absolute position embedding is added to the query only (value = key = LN(x))."""
    from keras import layers

    y = layers.LayerNormalization(name=f"{name}_ln")(x)
    query = layers.Add(name=f"{name}_query")([y, positions])
    # key_dim = embed_dim per head, as the seed (not embed_dim / num_heads).
    y = layers.MultiHeadAttention(cfg.num_heads, key_dim=dim, dropout=cfg.dropout, name=f"{name}_mha")(query, y, y)
    return layers.Dropout(cfg.dropout, name=f"{name}_drop")(y)


def _conv_module(x, cfg, dim, name):
    from keras import layers

    y = layers.LayerNormalization(name=f"{name}_ln")(x)
    y = layers.Conv1D(2 * dim, 1, name=f"{name}_pw1")(y)
    y = layers_module()[1](name=f"{name}_glu")(y)
    y = layers.DepthwiseConv1D(cfg.kernel_size, padding="same", name=f"{name}_dw")(y)
    y = layers.BatchNormalization(name=f"{name}_bn")(y)
    y = layers.Activation("swish", name=f"{name}_swish")(y)
    y = layers.Conv1D(dim, 1, name=f"{name}_pw2")(y)
    return layers.Dropout(cfg.dropout, name=f"{name}_drop")(y)


def conformer_block(x, positions, cfg: ConformerConfig, dim: int, name: str):
    """x + ½FF, + MHSA, + conv module, + ½FF, then LayerNorm: (batch, 3, dim) → (batch, 3, dim)."""
    from keras import layers

    half = layers.Rescaling(0.5, name=f"{name}_ff1_half")(_feed_forward(x, cfg, dim, f"{name}_ff1"))
    x = layers.Add(name=f"{name}_res1")([x, half])
    x = layers.Add(name=f"{name}_res2")([x, _mhsa(x, positions, cfg, dim, f"{name}_mhsa")])
    x = layers.Add(name=f"{name}_res3")([x, _conv_module(x, cfg, dim, f"{name}_conv")])
    half = layers.Rescaling(0.5, name=f"{name}_ff2_half")(_feed_forward(x, cfg, dim, f"{name}_ff2"))
    x = layers.Add(name=f"{name}_res4")([x, half])
    return layers.LayerNormalization(name=f"{name}_ln")(x)


def _attention_block(x, positions, cfg, dim, name):
    from keras import layers

    x = layers.Add(name=f"{name}_res1")([x, _mhsa(x, positions, cfg, dim, f"{name}_mhsa")])
    x = layers.Add(name=f"{name}_res2")([x, _feed_forward(x, cfg, dim, f"{name}_ff")])
    return layers.LayerNormalization(name=f"{name}_ln")(x)


def beat_embeddings(seq, cfg: ConformerConfig, rr=None):
    """Per-beat CNN (and, with RR inputs, the per-beat fusion): (batch, n_beats, 32, 187, 1) → (batch, n_beats, dim).

    Shared by :func:`build_model` (n_beats = 3) and the chunk trainer (:mod:`.chunks`, n_beats = chunk + 2): the
    layers and their names are the same, so weights move between the two models by name.
    """
    from keras import layers

    x = layers.TimeDistributed(beat_cnn(cfg), name="beat_cnn_td")(seq)
    if rr is not None:
        # Timing and morphology meet before the sequence model, projected back to embed_dim per beat.
        x = layers.Concatenate(name="with_rr")([x, rr])
        x = layers.Dense(cfg.embed_dim, name="rr_fusion")(x)
    return x


def sequence_head(x, cfg: ConformerConfig):
    """The sequence model over 3 beat embeddings: (batch, 3, dim) → (batch, n_classes) probabilities."""
    from keras import layers

    dim = cfg.embed_dim
    if cfg.variant in ("conformer", "attention-only"):
        positions = layers_module()[0](cfg.sequence_length, dim, name="position_embedding")(x)
        block = conformer_block if cfg.variant == "conformer" else _attention_block
        for i in range(cfg.num_blocks):
            x = block(x, positions, cfg, dim, f"block{i + 1}")
        x = layers.GlobalAveragePooling1D(name="pool")(x)
    elif cfg.variant == "cnn-lstm":
        x = layers.LSTM(cfg.lstm_units, name="lstm")(x)
    else:
        x = layers.GlobalAveragePooling1D(name="pool")(x)
    return layers.Dense(cfg.n_classes, activation="softmax", name="probabilities", dtype="float32")(x)


def build_model(cfg: ConformerConfig | None = None):
    """The Keras model of ``cfg.variant``.

    Inputs
    ------
    scalograms : (batch, 3, 32, 187, 1) float32, normalised per time column.
    rr : (batch, 3, 4) float32 standardised RR features, only when ``cfg.rr_features``.

    Output
    ------
    probabilities : (batch, 5) softmax over AAMI N, S, V, F, Q (the sequence's last beat).
    """
    import keras

    cfg = cfg or ConformerConfig()
    keras.utils.set_random_seed(cfg.seed)
    seq = keras.Input((cfg.sequence_length, cfg.height, cfg.width, 1), name="scalograms")
    inputs = [seq]
    rr = None
    if cfg.rr_features:
        rr = keras.Input((cfg.sequence_length, cfg.n_rr), name="rr")
        inputs.append(rr)
    x = beat_embeddings(seq, cfg, rr)
    out = sequence_head(x, cfg)
    return keras.Model(inputs if len(inputs) > 1 else seq, out, name=cfg.variant.replace("-", "_"))


def compile_model(model, cfg: ConformerConfig, soft_targets: bool = False):
    """AdamW + sparse categorical cross-entropy + accuracy, as the seed; ``soft_targets``: targets are probability
    vectors (distillation, ``ConformerConfig.teacher``), the same cross-entropy in its categorical form."""
    import keras

    loss, acc = ("categorical_crossentropy", keras.metrics.CategoricalAccuracy(name="accuracy")) if soft_targets \
        else ("sparse_categorical_crossentropy", "accuracy")  # the same history names either way
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=cfg.lr, weight_decay=cfg.weight_decay),
                  loss=loss, metrics=[acc])
    return model

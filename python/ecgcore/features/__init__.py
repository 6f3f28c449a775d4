"""Features on the C++ core: MFCCs (librosa and Kaldi flavours) and the HuBERT-ECG shard descriptors."""
from .hubert import N_SHARDS, hubert_shard_features, hubert_shards, shard_features, shard_statistics
from .mfcc import mel_filterbank, mfcc, mfcc_deltas

__all__ = ["mfcc", "mfcc_deltas", "mel_filterbank", "shard_features", "hubert_shards", "shard_statistics", "N_SHARDS",
           "hubert_shard_features"]  # hubert_shard_features: alias of shard_features

"""Clustering for HuBERT-ECG pseudo-labels: k-means (C++ core) and clustering quality scores.

>>> from ecgcore.cluster import KMeans, davies_bouldin
>>> km = KMeans(100, random_state=42, normalize=True).fit(features)     # features: (rows, dims)
>>> labels = km.predict(features)                                       # normalised the same way
"""
from ._kmeans import KMeans, l2_normalize, load_model, save_model
from ._scores import calinski_harabasz, davies_bouldin, normalized_mutual_info, purity, silhouette

__all__ = [
    "KMeans",
    "calinski_harabasz",
    "davies_bouldin",
    "l2_normalize",
    "load_model",
    "normalized_mutual_info",
    "purity",
    "save_model",
    "silhouette",
]

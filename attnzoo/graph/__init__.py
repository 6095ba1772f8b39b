"""Sensor-graph tools: spatial node embeddings (Laplacian eigenvectors, node2vec), cached
per graph, and how well an embedding preserves graph neighbourhoods."""

from attnzoo.graph.embedding import METHODS, spatial_embedding
from attnzoo.graph.laplacian import laplacian_eigenvectors
from attnzoo.graph.neighbourhood import neighbourhood_preservation
from attnzoo.graph.node2vec import node2vec, skipgram
from attnzoo.graph.random_walks import node2vec_walks

__all__ = [
    "METHODS",
    "laplacian_eigenvectors",
    "neighbourhood_preservation",
    "node2vec",
    "node2vec_walks",
    "skipgram",
    "spatial_embedding",
]

"""attnzoo: a JAX/Flax NNX model zoo of attention models across modalities."""

from attnzoo.zoo.registry import create_model, list_models

__all__ = ["create_model", "list_models"]
__version__ = "0.1.0"

"""Model families and the registry."""

from attnzoo.zoo.registry import create_model, list_models, register

__all__ = ["create_model", "list_models", "register"]

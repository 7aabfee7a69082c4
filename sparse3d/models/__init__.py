"""Task models built from sparse3d.nn."""
from sparse3d.models.completion import CompletionConfig, CompletionNet, CompletionOutput

__all__ = ["CompletionConfig", "CompletionNet", "CompletionOutput"]

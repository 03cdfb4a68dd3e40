"""Evaluation data: the embedded sample, Hugging Face hub datasets and local official layouts."""

from .images import ImageLoadError, load_image
from .sources import DataInfo, load_docs

__all__ = ["ImageLoadError", "load_image", "DataInfo", "load_docs"]

"""Evaluation data: the embedded sample, Hugging Face hub datasets and local official layouts.

``files`` and ``images`` know nothing of tasks (the hook modules use them); ``sources`` and ``local`` load a
task's rows. Names are resolved lazily so that importing ``qmamba_eval.data.files`` loads no task machinery.
"""

__all__ = ["ImageLoadError", "load_image", "DataInfo", "load_docs"]


def __getattr__(name):
    if name in ("ImageLoadError", "load_image"):
        from . import images

        return getattr(images, name)
    if name == "DataInfo":
        from .files import DataInfo

        return DataInfo
    if name == "load_docs":
        from .sources import load_docs

        return load_docs
    raise AttributeError(name)

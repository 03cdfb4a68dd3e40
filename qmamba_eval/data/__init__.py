"""Evaluation data as a task sees it: the embedded sample, Hugging Face hub datasets, local official layouts and
files in the hub schema (``sources.load_docs``). The readers they use are in ``qmamba_eval.readers``."""

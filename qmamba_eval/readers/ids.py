"""Question ids and the unique sample keys runs are resumed by."""

from __future__ import annotations


def question_id(doc: dict) -> str:
    return str(doc["question_id"] if "question_id" in doc else doc["id"])


def question_ids(docs) -> list[str]:
    """Ids without decoding images: straight from the columns of a hub dataset."""
    ds = getattr(docs, "ds", None)
    if ds is not None:
        col = "question_id" if "question_id" in ds.column_names else "id"
        return [str(q) for q in ds[col]]
    return [question_id(d) for d in docs]


def sample_keys(qids: list[str]) -> list[str]:
    """Unique keys for resuming: the question id, with "#n" on its n-th repeat (MME ids name the image)."""
    seen: dict[str, int] = {}
    keys = []
    for q in qids:
        n = seen.get(q, 0)
        seen[q] = n + 1
        keys.append(q if n == 0 else f"{q}#{n}")
    return keys

"""Row types: a task's ``[columns]`` table, and every row's values checked against it before a run.

Each column is a type, or ``{type = ..., optional = "row" | "column", values = [...]}``:
  "text"   a string;  "id"  a string or an integer;  "number"  an int or float;  "image"  anything (an image that
  cannot be read becomes an error sample at run time);  "list[T]"  a list of T;  "answer"  a string or
  {"answer": string} (VQA answer lists).  A "?" after the type = optional = "row": a row may lack it or hold null
  (or an empty list).  optional = "column": absent or null in every row (a test split) or in none.
  values: the allowed values, compared stripped and lower-cased.  unique = true: no two rows share the value (a
  question id that must name one question).  Text that is empty or only whitespace counts as missing.
"""

from __future__ import annotations

COLUMN_TYPES = ("text", "id", "number", "image", "answer")
MAX_TEXT = 65_536  # characters in one value: a longer question is a broken file, not a question


def parse_columns(raw: dict, where: str) -> dict:
    """A task file's [columns] table -> {column: {"type", "optional", "values"}}; a bad spec names the file."""
    out = {}
    for col, spec in (raw or {}).items():
        spec = {"type": spec} if isinstance(spec, str) else dict(spec)
        kind = str(spec.get("type", ""))
        optional = spec.get("optional")
        if kind.endswith("?"):
            kind, optional = kind[:-1], optional or "row"
        base = kind[5:-1] if kind.startswith("list[") and kind.endswith("]") else kind
        if base not in COLUMN_TYPES or optional not in (None, "row", "column"):
            raise ValueError(f"task file {where}: [columns] {col} = {spec!r}: type must be one of "
                             f"{', '.join(COLUMN_TYPES)} or list[...] (with '?' or optional = \"row\" | \"column\")")
        values = [str(v).strip().lower() for v in spec.get("values", [])]
        out[col] = {"type": kind, "optional": optional, "values": values, "unique": bool(spec.get("unique"))}
    return out


def check_rows(columns: dict, rows, where: str, id_columns=("question_id", "id")) -> None:
    """Every row's values against ``columns`` (``parse_columns``): a bad one is an error naming the source, the row
    (1-based, with its question id) and the column. ``rows``: dicts (absent columns count as missing)."""
    present = {c: 0 for c in columns}
    seen: dict = {c: {} for c, spec in columns.items() if spec.get("unique")}
    n = 0
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ValueError(f"{where}: row {n}: expected an object with columns, found {_value_name(row)}")
        for col, spec in columns.items():
            if spec["type"] == "image":  # an unreadable image is an error sample at run time
                continue
            v = row.get(col)
            empty = v is None or (isinstance(v, (list, tuple)) and len(v) == 0) or (isinstance(v, str) and not v.strip())
            at = _row_where(where, n, row, id_columns)
            if empty:
                if spec["optional"] is None:
                    state = "missing" if col not in row else _value_name(v) if v is None else "empty"
                    raise ValueError(f"{at}: column {col!r} is {state}; expected {_type_name(spec['type'])}")
                continue
            present[col] += 1
            if not _type_ok(spec["type"], v):
                raise ValueError(f"{at}: column {col!r} is {_value_name(v)}; expected {_type_name(spec['type'])}")
            longest = _longest(v)
            if longest > MAX_TEXT:
                raise ValueError(f"{at}: column {col!r} holds {longest:,} characters (at most {MAX_TEXT:,}): is "
                                 "the file broken?")
            if spec["values"] and str(v).strip().lower() not in spec["values"]:
                raise ValueError(f"{at}: column {col!r} is {v!r}; expected one of {', '.join(spec['values'])}")
            if col in seen:
                key = str(v)
                if key in seen[col]:
                    raise ValueError(f"{at}: column {col!r} is {v!r}, as in row {seen[col][key]}; each row needs its "
                                     f"own {col} (answers and submission files are keyed by it)")
                seen[col][key] = n
    for col, spec in columns.items():
        if spec["optional"] == "column" and 0 < present[col] < n:
            first = next(i for i, r in enumerate(rows, 1) if r.get(col) in (None, [], ()))
            raise ValueError(f"{_row_where(where, first, rows[first - 1], id_columns)}: column {col!r} is "
                             f"empty in this row but set in {present[col]} of {n} rows; give every row its "
                             f"{col} (or none, for a split without them)")


def _row_where(where: str, n: int, row: dict, id_columns) -> str:
    qid = next((row[c] for c in id_columns if isinstance(row, dict) and row.get(c) is not None), None)
    return f"{where}: row {n}" + (f" (question {qid})" if qid is not None else "")


def _longest(v) -> int:
    if isinstance(v, str):
        return len(v)
    if isinstance(v, dict):
        return _longest(v.get("answer"))
    if isinstance(v, (list, tuple)):
        return max((_longest(x) for x in v), default=0)
    return 0


def _type_ok(kind: str, v) -> bool:
    if kind.startswith("list[") and kind.endswith("]"):
        return isinstance(v, (list, tuple)) and all(_type_ok(kind[5:-1], x) for x in v)
    if kind == "text":
        return isinstance(v, str)
    if kind == "id":
        return isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
    if kind == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if kind == "answer":
        return isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("answer"), str))
    return True  # image


def _type_name(kind: str) -> str:
    if kind.startswith("list["):
        return f"a list of {_type_name(kind[5:-1])}"
    return {"text": "text", "id": "a string or integer id", "number": "a number",
            "answer": "an answer (text or {\"answer\": text})"}.get(kind, kind)


def _value_name(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        bad = next((x for x in v if not isinstance(x, str)), None)
        return f"a list ({len(v)} items)" if bad is None else f"a list holding {_value_name(bad)}"
    text = repr(v) if not isinstance(v, (dict, bytes)) else type(v).__name__
    return f"{type(v).__name__} {text[:40]}"

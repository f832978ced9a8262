"""Printing the rows as an aligned text table or a Markdown table."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_table", "format_summary", "format_import", "COLUMNS", "TARGETS"]

#: (header, kind, key): kind 'ref' = seconds, 'ratio' = to (a), 'own' = to own baseline
COLUMNS = [
    ("ref s", "ref", "ref"),
    ("jax-hand", "ratio", "jax-hand"),
    ("am-jax", "ratio", "am-jax"),
    ("am-jax/b", "own", "am-jax/jax-hand"),
    ("am-torch", "ratio", "am-torch"),
    ("torch-hand", "ratio", "torch-hand"),
    ("am-torch/th", "own", "am-torch/torch-hand"),
    ("am-tf", "ratio", "am-tf"),
    ("tf-hand", "ratio", "tf-hand"),
    ("am-tf/tfh", "own", "am-tf/tf-hand"),
    ("am-np", "ratio", "am-np"),
    ("am-np-nh", "ratio", "am-np-nh"),
]

#: targets for the ratio of am to a hand-written baseline in the same framework
TARGETS = {"am-jax/jax-hand": 1.0, "am-torch/torch-hand": 1.15, "am-tf/tf-hand": 1.15}
#: targets for the ratio to (a) of am fed (a)'s own functions, with and without the history
NUMPY_TARGETS = {"am-np": 1.25, "am-np-nh": 1.10}


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _seconds(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:.1f}"


def _counts(c: dict | None, second_order: bool) -> str:
    if c is None:
        return "n/a"
    text = f"{c['nfev']}/{c['njev']}"
    if second_order:
        text += f"/{c['nhev'] + c['nhvp']}"
    return text


def _cells(row: dict) -> list[str]:
    out = [row["cell"]]
    ok = row["ok"]
    for _, kind, key in COLUMNS:
        if kind == "ref":
            value = row["seconds"].get("ref")
            out.append(_seconds(value) if value is not None else "n/a")
            continue
        if kind == "ratio":
            value = row["ratios"].get(key)
            wrong = ok.get(key) is False
        else:
            value = row["vs_own_baseline"].get(key)
            first, second = key.split("/")
            wrong = ok.get(first) is False or ok.get(second) is False
        out.append("n/a" if value is None else _num(value) + ("!" if wrong else ""))
    second_order = row["method"].lower() in ("newton-cg", "trust-ncg", "trust-krylov", "trust-exact", "dogleg")
    out.append(_counts(row["counts"].get("ref"), second_order))
    out.append(_counts(row["counts"].get("am-jax"), second_order) + _count_mark(row))
    wrong = [k for k, v in row["ok"].items() if v is False]
    if wrong:
        out.append("! " + ",".join(wrong))
    elif not row.get("ref_converged", True) and row["f_ref"] is not None:
        out.append("ok (all unconverged)")
    else:
        out.append("ok")
    return out


def _count_mark(row: dict) -> str:
    """'' = am-jax's counts equal (a)'s; '=b' = they equal (b)'s, which has the same
    arithmetic (XLA rounds differently from NumPy, so the path can differ from (a)'s);
    ' ≠' = they equal neither."""
    if row.get("counts_match") in (True, None):
        return ""
    if row.get("counts_match_jax_hand") is True:
        return " =b"
    return " ≠"


HEADERS = ["cell"] + [h for h, _, _ in COLUMNS] + ["ref counts", "am-jax counts", "check"]


def format_table(rows: list[dict], markdown: bool = False) -> str:
    body = [_cells(row) for row in rows]
    if markdown:
        lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join("---" for _ in HEADERS) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(HEADERS)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(HEADERS), line(["-" * w for w in widths])]
    out += [line(cells) for cells in body]
    return "\n".join(out)


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _target_line(rows: list[dict], ratios: str, key: str, target: float) -> str:
    """The geometric mean of one ratio over the cells, and the cells above its target."""
    values = [row[ratios].get(key) for row in rows]
    gm = _geomean(values)
    if gm is None:
        return f"{key}: n/a (target <= {target:.2f})"
    missed = [f"{row['cell']} ({_num(v)})" for row, v in zip(rows, values) if v is not None and v > target]
    status = "all within target" if not missed else "above target in " + "; ".join(missed)
    return f"{key}: geometric mean {gm:.2f} (target <= {target:.2f}); {status}"


def format_summary(rows: list[dict]) -> str:
    lines = [_target_line(rows, "vs_own_baseline", key, target) for key, target in TARGETS.items()]
    lines += [_target_line(rows, "ratios", key, target) for key, target in NUMPY_TARGETS.items()]
    for key in ("jax-hand", "am-jax", "am-torch", "am-tf", "am-np", "am-np-nh", "torch-hand", "tf-hand"):
        gm = _geomean([row["ratios"].get(key) for row in rows])
        if gm is not None:
            lines.append(f"{key} / (a): geometric mean {gm:.2f}")
    mismatched = [row["cell"] for row in rows if row.get("counts_match") is False]
    neither = [row["cell"] for row in mismatched_rows(rows) if row.get("counts_match_jax_hand") is not True]
    numpy_off = [row["cell"] for row in rows if row.get("counts_match_numpy") is False]
    lines.append(
        "am-jax counts equal (a)'s: "
        + ("yes, in every cell" if not mismatched else "in every cell but " + ", ".join(mismatched))
        + (
            "; where not, they equal (b)'s (same XLA arithmetic, different rounding from NumPy)"
            if mismatched and not neither
            else ("; equal neither (a)'s nor (b)'s in " + ", ".join(neither) if neither else "")
        )
    )
    lines.append(
        "am-np (same NumPy arithmetic as (a)) counts equal (a)'s: " + ("yes, in every cell" if not numpy_off else "NO in " + ", ".join(numpy_off))
    )
    wrong = [(row["cell"], k) for row in rows for k, v in row["ok"].items() if v is False]
    lines.append("same optimum as (a): " + ("every contender in every cell" if not wrong else "WRONG: " + ", ".join(f"{k} on {c}" for c, k in wrong)))
    errors: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        for key, msg in row["errors"].items():
            errors.setdefault(key, {}).setdefault(msg, []).append(row["cell"])
    for key, messages in errors.items():
        for msg, cells in messages.items():
            where = "every cell" if len(cells) == len(rows) and len(rows) > 1 else ", ".join(cells)
            lines.append(f"n/a {key} ({where}): {msg}")
    return "\n".join(lines)


def mismatched_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("counts_match") is False]


def format_import(info: dict[str, Any]) -> str:
    if "error" in info:
        return f"import autominimize: failed ({info['error']})"
    loaded = info["frameworks_loaded"]
    verdict = "within" if info["seconds"] < 0.3 else "ABOVE"
    return (
        f"import autominimize: {info['seconds']:.3f} s in a fresh interpreter (median of {info['runs']}; "
        f"target < 0.3 s: {verdict}); of which numpy + scipy.optimize {info['numpy_scipy_seconds']:.3f} s, "
        f"autominimize's own {info['own_seconds']:.3f} s; frameworks loaded: " + (", ".join(loaded) + " (SHOULD BE NONE)" if loaded else "none")
    )

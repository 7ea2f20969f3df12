"""Results of a MOS study: per-method MOS with 95% confidence intervals, rater consistency, a bar chart."""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from .study import Study

__all__ = ["MethodScore", "StudyReport", "study_report", "write_bar_chart"]

# two-sided 95% Student t quantiles for 1..30 degrees of freedom (beyond: 1.96)
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t95(df: int) -> float:
    """Two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.96


@dataclass(frozen=True)
class MethodScore:
    """MOS of one method: mean of its 1-5 ratings, half-width of the 95% t interval (NaN below 2 ratings)."""

    method: str
    n: int
    mos: float
    ci95: float
    ab_wins: int = 0
    ab_total: int = 0


@dataclass(frozen=True)
class StudyReport:
    """All methods (sorted by MOS, best first), the raters and their agreement.

    ``consistency``: mean Pearson correlation of every two raters' scores on the trials both rated
    (NaN with fewer than two raters sharing 3+ trials); ``pairs`` how many rater pairs went into it.
    """

    methods: list[MethodScore]
    raters: list[str]
    answers: int
    consistency: float
    pairs: int


def _pearson(a: list[float], b: list[float]) -> float:
    if len(a) < 3 or statistics.pstdev(a) == 0 or statistics.pstdev(b) == 0:
        return math.nan
    return statistics.correlation(a, b)


def study_report(study: Study) -> StudyReport:
    """Summarise ``study``'s answers."""
    con = study._con  # same process, read-only queries
    rows = con.execute(
        "SELECT a.rater, t.id, t.kind, t.method_a, t.method_b, a.score, a.choice "
        "FROM answers a JOIN trials t ON t.id = a.trial"
    ).fetchall()
    scores: dict[str, list[int]] = {m: [] for m in study.config["methods"]}
    wins: dict[str, list[int]] = {m: [0, 0] for m in study.config["methods"]}
    per_rater: dict[str, dict[int, float]] = {}
    for rater, tid, kind, ma, mb, score, choice in rows:
        if kind == "rate":
            scores.setdefault(ma, []).append(int(score))
            per_rater.setdefault(rater, {})[tid] = float(score)
        else:
            winner = ma if choice == "A" else mb
            for m in (ma, mb):
                wins.setdefault(m, [0, 0])[1] += 1
            wins[winner][0] += 1
    methods = []
    for m, vals in scores.items():
        n = len(vals)
        mean = statistics.fmean(vals) if vals else math.nan
        ci = t95(n - 1) * statistics.stdev(vals) / math.sqrt(n) if n >= 2 else math.nan
        methods.append(MethodScore(m, n, mean, ci, wins.get(m, [0, 0])[0], wins.get(m, [0, 0])[1]))
    methods.sort(key=lambda s: -s.mos if math.isfinite(s.mos) else math.inf)
    corrs = []
    for r1, r2 in combinations(sorted(per_rater), 2):
        common = sorted(set(per_rater[r1]) & set(per_rater[r2]))
        c = _pearson([per_rater[r1][t] for t in common], [per_rater[r2][t] for t in common])
        if math.isfinite(c):
            corrs.append(c)
    return StudyReport(
        methods=methods,
        raters=sorted({r[0] for r in rows}),
        answers=len(rows),
        consistency=statistics.fmean(corrs) if corrs else math.nan,
        pairs=len(corrs),
    )


def write_bar_chart(report: StudyReport, path: str | os.PathLike[str]) -> Path:
    """A PNG bar chart of the MOS per method with 95% CI whiskers (Pillow)."""
    from PIL import Image, ImageDraw, ImageFont

    from ..._fs import atomic_write

    w, h, left, bottom, top = 100 + 110 * max(1, len(report.methods)), 420, 60, 360, 40
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font = ImageFont.load_default()

    def y(v: float) -> float:
        return bottom - (v - 1) / 4 * (bottom - top)  # axis 1..5

    for v in range(1, 6):
        d.line((left, y(v), w - 20, y(v)), fill=(225, 225, 225))
        d.text((left - 20, y(v) - 6), str(v), fill="black", font=font)
    d.line((left, top, left, bottom), fill="black")
    d.text((left, 10), f"MOS (1-5) with 95% CI; {len(report.raters)} rater(s), {report.answers} answers",
           fill="black", font=font)  # fmt: skip
    for i, m in enumerate(report.methods):
        x0 = left + 30 + i * 110
        if math.isfinite(m.mos):
            d.rectangle((x0, y(m.mos), x0 + 60, bottom), fill=(70, 130, 180), outline="black")
            if math.isfinite(m.ci95):
                lo, hi = max(1.0, m.mos - m.ci95), min(5.0, m.mos + m.ci95)
                d.line((x0 + 30, y(lo), x0 + 30, y(hi)), fill="black", width=2)
                d.line((x0 + 22, y(lo), x0 + 38, y(lo)), fill="black", width=2)
                d.line((x0 + 22, y(hi), x0 + 38, y(hi)), fill="black", width=2)
            d.text((x0, y(m.mos) - 16), f"{m.mos:.2f}", fill="black", font=font)
        d.text((x0, bottom + 8), m.method[:16], fill="black", font=font)
        d.text((x0, bottom + 22), f"n={m.n}", fill="black", font=font)
    path = Path(path)
    with atomic_write(path) as tmp:
        img.save(tmp, format="PNG")
    return path

"""summary.md of a read ``Report``: the time range, counts, emotion shares, the dominant emotion per
period, the longest stretch of each emotion and the gaps."""
from __future__ import annotations

from pathlib import Path

from fer_edge import __version__
from fer_edge.tools.report.clock import fmt_period
from fer_edge.tools.report.read import FACE_GAP_S, Report
from fer_edge.tools.report.rows import fmt_dur, md_cell

MAX_PERIOD_ROWS = 200   # periods listed in summary.md (all of them are in the chart)


def _head(rep: Report, log: Path, logged: tuple[float, float] | None) -> list[str]:
    assert rep.first is not None and rep.last is not None     # a report has rows
    c = rep.clock
    out = [f"# Emotion report: {md_cell(log.name)}", "",
           f"Written by fer-edge {__version__} from {md_cell(', '.join(p.name for p in rep.files))}. "
           f"Times are {md_cell(c.describe())}.", "",
           "| | |", "|---|---|",
           f"| time range | {c.when(rep.first)} to {c.when(rep.last)} ({fmt_dur(rep.last - rep.first)}) |"]
    if c.media and logged is not None:
        wall = type(c)("wall", c.tz, c.tz_name)
        out.append(f"| logged (wall clock, {md_cell(c.tz_name)}) | {wall.when(logged[0])} to {wall.when(logged[1])} |")
    out += [f"| rows (one per face per frame) | {rep.rows:,} |",
            f"| frames with faces | {rep.frames:,} |",
            f"| tracked faces | {rep.faces:,} (a face id seen with pauses under {FACE_GAP_S:g} s) |",
            f"| malformed rows skipped | {rep.malformed:,} |"]
    if rep.out_of_range:
        out.append(f"| rows outside --from/--to | {rep.out_of_range:,} |")
    if rep.outliers:
        out.append(f"| rows with an impossible time skipped (a clock not yet set?) | {rep.outliers:,} "
                   f"(e.g. {md_cell(', '.join(rep.outlier_times))}) |")
    if rep.damaged:
        out.append(f"| damaged files, read up to the damage | {md_cell('; '.join(rep.damaged))} |")
    return out


def _periods(rep: Report) -> list[str]:
    out = ["", f"## Per period ({fmt_period(rep.every)})", "",
           "| period (start) | rows | faces per frame | dominant | its share |", "|---|---|---|---|---|"]
    keys = sorted(rep.periods)
    for p in keys[:MAX_PERIOD_ROWS]:
        c = rep.periods[p]
        n = sum(c[:-1])
        top = max(range(len(rep.labels)), key=lambda i: c[i])
        out.append(f"| {rep.clock.when(p * rep.every)} | {n:,} | {n / c[-1]:.2f} "
                   f"| {rep.labels[top]} | {100.0 * c[top] / n:.0f}% |")
    if len(keys) > MAX_PERIOD_ROWS:
        out.append(f"\n{len(keys) - MAX_PERIOD_ROWS} more periods with rows are in timeline.png "
                   f"(pass a longer --every for a shorter table).")
    return out


def _stretches_and_gaps(rep: Report) -> list[str]:
    when = rep.clock.when
    out = ["", "## Longest stretches", "",
           "The longest time one tracked face kept each emotion.", "",
           "| emotion | for | from | to | source | face |", "|---|---|---|---|---|---|"]
    for i in sorted(rep.longest, key=lambda i: -rep.longest[i].seconds):
        s = rep.longest[i]
        out.append(f"| {rep.labels[i]} | {fmt_dur(s.seconds)} | {when(s.start)} | {when(s.end)} "
                   f"| {md_cell(Path(s.source).name or s.source)} | {s.face_id} |")
    nobody = "nobody was in view" if rep.clock.media else "the device was off, or nobody was in view"
    out += ["", "## Gaps", "", f"Stretches of more than {fmt_dur(rep.gap_s)} without a row: {nobody}.", ""]
    if rep.gap_count:
        out += ["| from | to | length |", "|---|---|---|"]
        out += [f"| {when(a)} | {when(b)} | {fmt_dur(b - a)} |" for a, b in rep.gaps]
        if rep.gap_count > len(rep.gaps):
            out.append(f"\nand {rep.gap_count - len(rep.gaps)} more.")
    else:
        out.append("None.")
    return out


def summary_md(rep: Report, log: Path, logged: tuple[float, float] | None = None) -> str:
    """The whole of summary.md, ending in a newline. ``logged``: the wall-clock span of a video's rows."""
    out = _head(rep, log, logged)
    out += ["", "## Emotion shares", "", "| emotion | rows | share |", "|---|---|---|"]
    out += [f"| {name} | {n:,} | {pct:.1f}% |" for name, n, pct in rep.shares()]
    out += _periods(rep) + _stretches_and_gaps(rep)
    return "\n".join(out) + "\n"

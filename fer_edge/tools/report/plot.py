"""The report's two charts (timeline.png, faces.png), drawn with matplotlib from a read ``Report``,
in the emotions' colours (common/palette.py) and on the report's clock."""
from __future__ import annotations

from pathlib import Path

from fer_edge.common.palette import color_rgb
from fer_edge.tools.report.clock import fmt_period
from fer_edge.tools.report.rows import ReportError, fmt_dur, plural


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _time_axis(rep, axis) -> None:
    """Ticks and label of the time axis: h:mm:ss into the video, or dates in the report's zone."""
    import matplotlib.dates as mdates
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    c = rep.clock
    if c.media:
        axis.xaxis.set_major_locator(MaxNLocator(nbins=10, steps=[1, 2, 3, 5, 6, 10]))
        axis.xaxis.set_major_formatter(FuncFormatter(
            lambda v, _: f"{int(v) // 3600}:{int(v) // 60 % 60:02d}:{int(v) % 60:02d}" if v >= 3600
            else f"{int(v) // 60}:{int(v) % 60:02d}"))
        axis.set_xlabel(f"position in the video {c.video} (min:s); hatched: nobody in view")
    else:
        locator = mdates.AutoDateLocator(tz=c.tz)
        axis.xaxis.set_major_locator(locator)
        axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=c.tz))
        axis.set_xlabel(f"time ({c.tz_name}); hatched: no rows (device off or nobody in view)")


def _series(rep):
    """Per period from the first to the last: each emotion's share (%) and the faces per frame (NaN: no rows)."""
    import numpy as np
    keys = sorted(rep.periods)
    lo, hi = keys[0], keys[-1]
    n = hi - lo + 1
    if n > 20000:                                             # keep the chart drawable: coarser periods
        raise ReportError(f"--every {fmt_dur(rep.every)} gives {n:,} periods over this log: pass a longer --every")
    shares = np.full((len(rep.labels), n), np.nan)
    faces = np.full(n, np.nan)
    for p, c in rep.periods.items():
        total = sum(c[:-1])
        shares[:, p - lo] = np.array(c[:-1]) / total * 100.0
        faces[p - lo] = total / c[-1]
    # one point per period start and end, so each period is a flat step and empty ones stay blank
    starts = [rep.clock.axis((lo + i) * rep.every) for i in range(n + 1)]
    xs = [t for i in range(n) for t in (starts[i], starts[i + 1])]
    return xs, shares, faces


def plot_timeline(rep, path: Path) -> None:
    """timeline.png: the share of each emotion per period, and the faces per frame."""
    import numpy as np
    plt = _pyplot()
    xs, shares, faces = _series(rep)
    fig, (ax, axf) = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    bottom = np.zeros(len(xs))
    for i, name in enumerate(rep.labels):
        ys = np.repeat(shares[i], 2)
        ax.fill_between(xs, bottom, bottom + ys, step=None, color=color_rgb(name), label=name, linewidth=0,
                        where=~np.isnan(ys))
        bottom = bottom + np.nan_to_num(ys)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of face rows (%)")
    ax.set_title(f"Emotions per {fmt_period(rep.every)}: {rep.rows:,} rows, {plural(rep.faces, 'tracked faces')}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    axf.plot(xs, np.repeat(faces, 2), color="0.25")
    axf.set_ylabel("faces per frame")
    axf.set_ylim(0, max(1.0, float(np.nanmax(faces)) * 1.15))
    for a, b in rep.gaps:
        for axis in (ax, axf):
            axis.axvspan(rep.clock.axis(a), rep.clock.axis(b), facecolor="none", edgecolor="0.75", hatch="///",
                         linewidth=0, zorder=0)
    _time_axis(rep, axf)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_faces(rep, path: Path) -> None:
    """faces.png: the longest-seen tracked faces and their emotion mix."""
    plt = _pyplot()
    faces = [t for _, _, t in sorted(rep.top_faces, key=lambda x: (-x[0], x[1]))]
    shown = sorted({i for t in faces for i, m in enumerate(t.counts) if m})
    rows = max(len(faces), 0.7 * len(shown))                  # the legend's entries fit beside the bars
    fig, ax = plt.subplots(figsize=(11, 0.9 + 0.38 * max(rows, 1)))
    names = []
    for row, t in enumerate(faces):
        seen = max(t.last - t.start, 0.0)
        total = sum(t.counts)
        left = 0.0
        for i, n in enumerate(t.counts):
            w = seen * n / total if seen > 0 else n / total
            if n:
                ax.barh(row, w, left=left, color=color_rgb(rep.labels[i]))
            left += w
        names.append(f"{Path(t.source).name or t.source} #{t.face_id}, {rep.clock.short(t.start)}")
    ax.set_yticks(range(len(faces)), names)
    ax.invert_yaxis()
    ax.set_xlabel("seconds seen (bar split by the share of each emotion)")
    title = (f"The {len(faces)} longest-seen of {rep.faces:,} tracked faces" if len(faces) < rep.faces
             else plural(rep.faces, "tracked faces"))
    ax.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=color_rgb(rep.labels[i])) for i in shown]
    ax.legend(handles, [rep.labels[i] for i in shown], loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)

"""The report's two charts (timeline.png, faces.png), drawn with matplotlib from a read ``Report``."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from fer_edge.edge.reportio import ReportError, fmt_dur


def plot_timeline(rep, path: Path) -> None:
    """timeline.png: the share of each emotion per period, and the faces per frame."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
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
    starts = [datetime.fromtimestamp((lo + i) * rep.every, timezone.utc) for i in range(n + 1)]
    xs = [t for i in range(n) for t in (starts[i], starts[i + 1])]
    fig, (ax, axf) = plt.subplots(2, 1, figsize=(11, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    colors = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    bottom = np.zeros(2 * n)
    for i, name in enumerate(rep.labels):
        ys = np.repeat(shares[i], 2)
        ax.fill_between(xs, bottom, bottom + ys, step=None, color=colors[i % 10], label=name, linewidth=0,
                        where=~np.isnan(ys))
        bottom = bottom + np.nan_to_num(ys)
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of face rows (%)")
    ax.set_title(f"Emotions per {fmt_dur(rep.every)}: {rep.rows:,} rows, {rep.faces:,} tracked faces")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    axf.plot(xs, np.repeat(faces, 2), color="0.25")
    axf.set_ylabel("faces per frame")
    axf.set_ylim(0, max(1.0, float(np.nanmax(faces)) * 1.15))
    for a, b in rep.gaps:
        for axis in (ax, axf):
            axis.axvspan(datetime.fromtimestamp(a, timezone.utc), datetime.fromtimestamp(b, timezone.utc),
                         color="0.92", zorder=0)
    axf.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    axf.set_xlabel("time (UTC); grey: no rows (device off or nobody in view)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

def plot_faces(rep, path: Path) -> None:
    """faces.png: the longest-seen tracked faces and their emotion mix."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    faces = [t for _, _, t in sorted(rep.top_faces, key=lambda x: (-x[0], x[1]))]
    fig, ax = plt.subplots(figsize=(11, 0.9 + 0.38 * max(len(faces), 1)))
    colors = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    names = []
    for row, t in enumerate(faces):
        seen = max(t.last - t.start, 0.0)
        total = sum(t.counts)
        left = 0.0
        for i, n in enumerate(t.counts):
            w = seen * n / total if seen > 0 else n / total
            if n:
                ax.barh(row, w, left=left, color=colors[i % 10], label=rep.labels[i] if row == 0 or i not in
                        {j for f in faces[:row] for j, m in enumerate(f.counts) if m} else None)
            left += w
        names.append(f"{Path(t.source).name or t.source} #{t.face_id}, "
                     f"{datetime.fromtimestamp(t.start, timezone.utc):%m-%d %H:%M:%S}")
    ax.set_yticks(range(len(faces)), names)
    ax.invert_yaxis()
    ax.set_xlabel("seconds seen (bar split by the share of each emotion)")
    ax.set_title(f"The {len(faces)} longest-seen of {rep.faces:,} tracked faces")
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda k: rep.labels.index(labels[k]))
    ax.legend([handles[k] for k in order], [labels[k] for k in order], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""The shipped classifier against the model it replaces: PublicTest in one pass under both label sets,
kdef-dev through the whole pipeline, calibration, and the cost per face, both models in the same run.

"Before" is ``BENCH_BASELINE_MODEL`` (a .tflite with its contract beside it) when set; otherwise the
committed ``models/emotion_int8.tflite`` when the working copy's differs from it (a new model not yet
committed), else the version before the commit that last changed it (from git history).

PublicTest (``test/``, FER+'s validation set): every test face through ``TfliteModel``, one invoke per
face as the edge runs it (a model with the mirror inside mirrors inside that invoke; nothing is flipped
outside). Scored under FER+'s majority protocol (its ten annotators: eight classes, and the faces of
FER-2013's seven, where a seven-label model can be right), with the expected calibration error (15 bins)
and the mean cross-entropy to the annotators' votes; and under FER-2013's single labels (every face).
The agreement with the float model is the converter's, from the contract (same faces). kdef-dev: one whole
``python -m fer_edge.edge`` run over the 1,426 photos per model and detector backend, default config
(photos are mirror-averaged either way: by the model, or by ``edge.flip_tta: auto``). The two models
are compared photo by photo too: the photos only one of them gets right, and the exact McNemar test on
those (the chance of a split at least that uneven if both models were equally good); and per expression,
with each model's most frequent wrong answer.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

TITLE = "Classifier: the shipped model against the one it replaces (PublicTest under FER+ and FER-2013 labels, kdef-dev, calibration, cost per face)"
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "emotion_int8.tflite"
TARGET_TOP1, TARGET_F1, TARGET_AGREE, TARGET_ECE = 82.0, 0.70, 98.5, 0.05    # FER+ majority protocol
TARGET_KDEF, TARGET_KDEF_RECALL = 76.0, 55.0          # whole pipeline, default config; every expression
# The per-face budget, 0.6 ms with one thread, was set when the plain `default` model took 0.28 ms here.
# Core speed varies between machines and days, so it is checked against the model before, timed in the
# same run (a plain `default` model): at most 0.6 / 0.28 = 2.14x its time.
MAX_RATIO = 0.6 / 0.28
LATENCY_ROUNDS, LATENCY_RUNS = 3, 500


def _git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True).stdout


def _baseline(tmp: Path) -> tuple[Path | None, str]:
    """The model to compare with and where it came from (None when there is none)."""
    if os.environ.get("BENCH_BASELINE_MODEL"):
        p = Path(os.environ["BENCH_BASELINE_MODEL"]).resolve()
        return p, f"`{p}` (BENCH_BASELINE_MODEL)"
    rel = SHIPPED.relative_to(ROOT).as_posix()
    try:
        commits = _git("log", "--format=%H", "--", rel).decode().split()
        head_blob = _git("rev-parse", f"HEAD:{rel}").decode().strip()
        work_blob = _git("hash-object", rel).decode().strip()
    except (OSError, subprocess.CalledProcessError):
        return None, "none (no git history here)"
    if work_blob != head_blob:
        rev, why = "HEAD", "the committed model (the working copy's is new)"
    elif len(commits) >= 2:
        rev, why = commits[1], "the model before the last change to it"
    else:
        return None, "none (the model has no earlier version in git)"
    out = tmp / "baseline"
    out.mkdir()
    for suffix in (".tflite", ".json"):
        (out / f"emotion_int8{suffix}").write_bytes(_git("show", f"{rev}:{rel[:-len('.tflite')]}{suffix}"))
    return out / "emotion_int8.tflite", f"{why}: `{rel}` at {rev[:10]}"


def _public_test(path: Path, test, test13) -> dict:
    from fer_edge.common.contract import load_contract
    from fer_edge.common.model_runner import TfliteModel
    from fer_edge.train.evaluate import score_probs
    c = load_contract(path)
    model = TfliteModel(path, contract=c)
    r = score_probs(model.probs_batch(test.x), test, None, test13, model.probs_batch(test13.x))
    return {"top1": 100 * r["accuracy"], "f1": r["macro_f1"], "top1_7": 100 * r["ferplus_seven_classes"]["accuracy"],
            "f1_7": r["ferplus_seven_classes"]["macro_f1"], "ece": r["ece_15"], "ce": r["cross_entropy_votes"],
            "top1_13": 100 * r["fer2013_labels"]["accuracy"], "f1_13": r["fer2013_labels"]["macro_f1"],
            "labels": len(c.labels), "agree": 100 * c.metrics.get("top1_agreement", float("nan")),
            "mirror": c.mirror_inside, "source": c.raw.get("source", {}).get("run_dir", "?")}


def _latency(paths: dict[str, Path], faces: np.ndarray) -> dict[str, list[float]]:
    from fer_edge.convert.verify import latency_ms
    out: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(LATENCY_ROUNDS):
        for k, p in paths.items():
            out[k].append(latency_ms(p, faces, num_threads=1, runs=LATENCY_RUNS, warmup=50)[0])
    return out


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: the chance of a split of the discordant photos at least this
    uneven when each is equally likely to go either way."""
    n, k = only_a + only_b, min(only_a, only_b)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


def _kdef(paths: dict[str, Path], tmp: Path) -> dict[tuple[str, str], dict]:
    from bench.bench_detect import KDEF, per_class, right_photos, score
    from bench.bench_edge import _edge
    files = sorted(KDEF.glob("*/*.JPG"))
    folder = tmp / "kdef"
    folder.mkdir()
    for f in files:
        (folder / f.name).symlink_to(f)
    out = {}
    for backend in ("haar", "blazeface"):
        for k, p in paths.items():
            e = _edge(folder, p, tmp, f"edge.detector.backend={backend}", tag=f"-{k}-{backend}")
            names = [f.name for f in files]
            out[(k, backend)] = {**score(e["log"], names), "right": right_photos(e["log"], names),
                                 "classes": per_class(e["log"], names)}
    return out


def _paired(kdef: dict) -> list[str]:
    """Shipped against before on kdef-dev, photo by photo, per detector backend."""
    lines = []
    for backend in ("haar", "blazeface"):
        if ("shipped", backend) not in kdef or ("before", backend) not in kdef:
            continue
        new, old = kdef[("shipped", backend)]["right"], kdef[("before", backend)]["right"]
        gain, loss = len(new - old), len(old - new)
        lines.append(f"- {backend}: {gain} photos only the shipped model gets right, {loss} only the model before; "
                     f"exact McNemar p = {mcnemar_p(gain, loss):.2f}")
    return ["", "kdef-dev photo by photo (a p-value well below 0.05 means the difference is more than chance):",
            *lines] if lines else []


def _classes(kdef: dict) -> list[str]:
    """kdef-dev right % per expression, per model and detector backend, with the most frequent wrong answer."""
    cols = [key for key in kdef if "classes" in kdef[key]]
    if not cols:
        return []
    rows = ["", "kdef-dev per expression: right % (the most frequent wrong answer, in photos)", "",
            "| expression | " + " | ".join(f"{k}, {backend}" for k, backend in cols) + " |",
            "|---|" + "---|" * len(cols)]
    for label in kdef[cols[0]]["classes"]:
        cells = []
        for key in cols:
            c = kdef[key]["classes"][label]
            wrong = f" ({c['wrong_as'][0]} {c['wrong_as'][1]})" if c["wrong_as"] else ""
            cells.append(f"{100 * c['right'] / c['n']:.1f}{wrong}" if c["n"] else "no photos")
        rows.append(f"| {label} ({kdef[cols[0]]['classes'][label]['n']}) | " + " | ".join(cells) + " |")
    return rows


def _ok(good: bool) -> str:
    return "yes" if good else "**no**"


def _row(k: str, a: dict, t: list[float], base_ms: float | None, kdef: dict) -> str:
    med = float(np.median(t))
    ms = f"**{med:.3f}** ({', '.join(f'{v:.3f}' for v in t)}" + (
        f"; {med / base_ms:.2f}x before, {_ok(med / base_ms <= MAX_RATIO)})" if base_ms and k == "shipped" else ")")
    goal = k == "shipped"
    cells = [f"**{a['top1']:.2f}**" + (f" ({_ok(a['top1'] >= TARGET_TOP1)})" if goal else ""),
             f"**{a['f1']:.3f}**" + (f" ({_ok(a['f1'] >= TARGET_F1)})" if goal else ""),
             f"{a['top1_7']:.2f} / {a['f1_7']:.3f}",
             f"{a['ece']:.3f}" + (f" ({_ok(a['ece'] <= TARGET_ECE)})" if goal else ""), f"{a['ce']:.3f}",
             f"{a['top1_13']:.2f} / {a['f1_13']:.3f}",
             f"{a['agree']:.2f}" + (f" ({_ok(a['agree'] >= TARGET_AGREE)})" if goal else ""), ms]
    for backend in ("haar", "blazeface"):
        s = kdef.get((k, backend))
        if s is None:
            cells.append("not measured")
            continue
        worst = min(100 * c["right"] / c["n"] for c in s["classes"].values() if c["n"])
        ok = f"; {_ok(s['all']['acc'] >= TARGET_KDEF and worst >= TARGET_KDEF_RECALL)}" if goal else ""
        cells.append(f"**{s['all']['acc']:.1f}** ({s['straight']['acc']:.1f} / {s['half-left']['acc']:.1f} / "
                     f"{s['half-right']['acc']:.1f}; worst expression {worst:.0f}{ok})")
    return f"| {k} | `{a['source']}` | {a['labels']} | {'yes' if a['mirror'] else 'no'} | {' | '.join(cells)} |"


def run() -> str:
    from fer_edge.common.config import load_config
    from fer_edge.train.data import DataError, load_split
    try:
        test, test13 = load_split(load_config(None, [("data.labels", "ferplus")]).data, "test", with_fer2013=True)
    except (DataError, OSError) as exc:
        return f"Not measured: no FER-2013 test split with FER+'s votes ({exc}).\n"
    with tempfile.TemporaryDirectory(prefix="bench_classifier_") as d:
        tmp = Path(d)
        base, base_note = _baseline(tmp)
        paths = {"shipped": tmp / "shipped" / SHIPPED.name}
        paths["shipped"].parent.mkdir()
        for suffix in (".tflite", ".json"):
            shutil.copy(SHIPPED.with_suffix(suffix), paths["shipped"].with_suffix(suffix))
        if base is not None:
            paths["before"] = base
        acc = {k: _public_test(p, test, test13) for k, p in paths.items()}
        lat = _latency(paths, test.x[:64])
        kdef = _kdef(paths, tmp) if (ROOT.parent / "shared" / "data" / "kdef-dev").is_dir() else {}
    base_ms = float(np.median(lat["before"])) if "before" in lat else None
    rows = ["| model | from | labels | mirror inside | FER+ top-1 % | FER+ macro-F1 | FER+, FER-2013's seven classes: "
            "top-1 % / macro-F1 | ECE (15 bins) | cross-entropy to the votes | FER-2013 labels: top-1 % / macro-F1 "
            "| agreement with float % | ms per face, 1 thread (rounds) | kdef-dev right %, haar | kdef-dev right %, blazeface |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows += [_row(k, acc[k], lat[k], base_ms, kdef) for k in paths]
    return "\n".join([
        f"Shipped: `{SHIPPED.relative_to(ROOT)}`. Before: {base_note}. PublicTest (`test/`, FER+'s validation set): one "
        f"invoke per face. FER+: its majority protocol, {len(test)} faces ({int((test.y < 7).sum())} of FER-2013's seven "
        f"classes); FER-2013 labels: all {len(test13)} faces. Targets for the shipped model: FER+ top-1 >= {TARGET_TOP1}%, "
        f"macro-F1 >= {TARGET_F1}, expected calibration error <= {TARGET_ECE}, agreement with its float model >= "
        f"{TARGET_AGREE}% (from its contract), at most {MAX_RATIO:.2f}x the time per face of the model "
        f"before with one thread (the 0.6 ms budget set when a plain model took 0.28 ms; {LATENCY_ROUNDS} alternated "
        f"rounds of {LATENCY_RUNS} invokes); kdef-dev >= {TARGET_KDEF}% with every expression >= {TARGET_KDEF_RECALL}%. "
        "kdef-dev: largest face of each photo against its label, all poses (straight / half-left / half-right); a "
        "photo without a face counts as wrong.",
        "", *rows, *_paired(kdef), *_classes(kdef)]) + "\n"

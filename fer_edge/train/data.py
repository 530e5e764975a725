"""FER-2013 in the three forms users have, as uint8 arrays (cached).

1. Kaggle image folders: ROOT/train/<class>/, ROOT/test/<class>/ (msambare/fer2013);
2. ROOT/images/train/<class>/, ROOT/images/validation/<class>/ (Face Expression Recognition Dataset);
3. the original fer2013.csv (emotion,pixels,Usage).

Every image goes through ``common.preprocess.preprocess_face`` (48x48 grayscale uint8). Single bad
files/rows are skipped and reported with counts; structural problems raise ``DataError``.
Decoded arrays are cached in ``data.cache_dir`` under a key made from the source's content.
"""
from __future__ import annotations

import csv
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_edge.common.config import DataConfig, resolve_path
from fer_edge.common.labels import CSV_CODE_TO_LABEL, LABEL_INDEX, LABEL_SETS, LABELS
from fer_edge.common.preprocess import INPUT_SIZE, preprocess_face
from fer_edge.train import ferplus
from fer_edge.train.splits import DataError, FerData, Split

log = logging.getLogger(__name__)

CACHE_VERSION = 2
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
SPLIT_PREFIXES = ("Training_", "PublicTest_", "PrivateTest_")


# ---------------------------------------------------------------- detection
def detect_form(root: Path) -> tuple[str, Path]:
    """Return (form, path) for a dataset root, or raise DataError saying what was expected."""
    root = Path(root)
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "csv", root
        raise DataError(f"{root} is a file but not a .csv; pass the FER-2013 folder or fer2013.csv")
    if not root.exists():
        raise DataError(f"dataset path {root} does not exist. Download FER-2013 (Kaggle msambare/fer2013 "
                        "or fer2013.csv) and pass DATA=PATH (or set data.root in config.yaml).")
    for cand in (root / "fer2013.csv", root / "fer2013" / "fer2013.csv"):
        if cand.is_file():
            return "csv", cand
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "kaggle", root
    for base in (root / "images", root):
        if (base / "train").is_dir() and (base / "validation").is_dir():
            return "images", base
    raise DataError(f"no FER-2013 found at {root}: expected train/ and test/ class folders (Kaggle), "
                    "images/train/ and images/validation/ folders, or a fer2013.csv file")


# ---------------------------------------------------------------- folders
def _list_class_folders(split_dir: Path) -> dict[str, list[Path]]:
    subdirs = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subdirs if p.name.lower() not in LABEL_INDEX]
    if unknown:
        raise DataError(f"{split_dir}: unknown class folder(s) {', '.join(unknown)}; expected exactly "
                        f"{', '.join(LABELS)}. Rename or remove them.")
    found = {p.name.lower(): p for p in subdirs}
    missing = [c for c in LABELS if c not in found]
    if missing:
        raise DataError(f"{split_dir}: missing class folder(s) {', '.join(missing)}; expected {', '.join(LABELS)}")
    files = {}
    for c in LABELS:
        fs = sorted(f for f in found[c].iterdir() if f.is_file() and not f.name.startswith("."))
        if not fs:
            raise DataError(f"{found[c]}: class '{c}' has no files. Every class needs images.")
        files[c] = fs
    return files


def _fingerprint_files(files: dict[str, list[Path]], h) -> None:
    for c in LABELS:
        for f in files[c]:
            h.update(f"{c}/{f.name}\0".encode())
            h.update(f.read_bytes())


def _decode_files(files: dict[str, list[Path]], split_dir: Path, bad: list[str]) -> Split:
    xs, ys, names = [], [], []
    for c in LABELS:
        for f in files[c]:
            img = None
            if f.suffix.lower() in IMAGE_EXTS or f.suffix == "":
                buf = np.fromfile(str(f), dtype=np.uint8)
                img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if buf.size else None
            if img is None:
                bad.append(str(f))
                continue
            xs.append(preprocess_face(img, INPUT_SIZE))
            ys.append(LABEL_INDEX[c])
            names.append(f.name)
    if not xs:
        raise DataError(f"{split_dir}: no readable images")
    return Split(np.stack(xs), np.asarray(ys, np.int64), np.asarray(names))


def _load_folders(train_dir: Path, test_dir: Path) -> tuple[Split, Split, dict, str]:
    ftrain, ftest = _list_class_folders(train_dir), _list_class_folders(test_dir)
    h = hashlib.sha256(f"folders-v{CACHE_VERSION}".encode())
    _fingerprint_files(ftrain, h)
    h.update(b"--test--")
    _fingerprint_files(ftest, h)
    key = h.hexdigest()[:24]

    def decode() -> tuple[Split, Split, dict[str, list[str]]]:
        bad: list[str] = []
        tr = _decode_files(ftrain, train_dir, bad)
        te = _decode_files(ftest, test_dir, bad)
        return tr, te, {"unreadable_files": bad}
    return (*_cached(key, decode), key)


# ---------------------------------------------------------------- csv
def _load_csv(path: Path) -> tuple[Split, Split, dict, str]:
    key = hashlib.sha256(f"csv-v{CACHE_VERSION}".encode() + path.read_bytes()).hexdigest()[:24]

    def decode():
        tr, te, bad = ([], [], []), ([], [], []), []
        n_px = INPUT_SIZE * INPUT_SIZE
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = set(reader.fieldnames or [])
            if not {"emotion", "pixels"} <= cols:
                raise DataError(f"{path}: header {reader.fieldnames} lacks 'emotion' and 'pixels' columns; "
                                "expected the original fer2013.csv (emotion,pixels,Usage)")
            for i, row in enumerate(reader, start=2):
                try:
                    code = int(row["emotion"])
                    label = CSV_CODE_TO_LABEL[code]
                    px = np.array(row["pixels"].split(), dtype=np.float32)
                    if px.size != n_px or not np.all((px >= 0) & (px <= 255)):
                        raise ValueError(f"{px.size} pixel values, expected {n_px} in 0..255")
                    usage = (row.get("Usage") or "Training").strip()
                    if usage not in ("Training", "PublicTest", "PrivateTest"):
                        raise ValueError(f"Usage {usage!r}")
                except (KeyError, ValueError, TypeError, AttributeError) as exc:
                    bad.append(f"line {i}: {exc}")
                    continue
                dest = tr if usage == "Training" else te
                dest[0].append(px.reshape(INPUT_SIZE, INPUT_SIZE).astype(np.uint8))
                dest[1].append(LABEL_INDEX[label])
                dest[2].append(f"{usage}_{i}")
        for name, part in (("Training", tr), ("PublicTest/PrivateTest", te)):
            if not part[0]:
                raise DataError(f"{path}: no valid rows with Usage {name} ({len(bad)} malformed rows)")
        mk = lambda p: Split(np.stack(p[0]), np.asarray(p[1], np.int64), np.asarray(p[2]))  # noqa: E731
        return mk(tr), mk(te), {"malformed_rows": bad}
    return (*_cached(key, decode), key)


# ---------------------------------------------------------------- cache
_CACHE_DIR: Path | None = None


def _cached(key: str, decode):
    path = _CACHE_DIR / f"fer-{key}.npz" if _CACHE_DIR else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                tr = Split(z["xtr"], z["ytr"], z["ntr"])
                te = Split(z["xte"], z["yte"], z["nte"])
                skipped = {k[5:]: z[k].tolist() for k in z.files if k.startswith("skip_")}
            return tr, te, skipped
        except Exception as exc:  # corrupt cache: decode again
            log.warning(f"ignoring unreadable cache {path} ({exc})")
    tr, te, skipped = decode()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        skips: dict[str, Any] = {f"skip_{k}": np.asarray(v, dtype=str) for k, v in skipped.items()}
        np.savez(tmp, xtr=tr.x, ytr=tr.y, ntr=tr.names, xte=te.x, yte=te.y, nte=te.names, **skips)
        os.replace(tmp, path)
    return tr, te, skipped


# ---------------------------------------------------------------- public
def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``fraction`` of each class goes to val, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_val = int(round(fraction * idx.size))
        if fraction <= 0:
            n_val = 0                       # a final fit: everything trains
        elif idx.size >= 2:
            n_val = min(max(n_val, 1), idx.size - 1)
        else:
            n_val = 0
        va.append(idx[:n_val])
        tr.append(idx[n_val:])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(va))


def _filter_subset(test: Split, subset: str) -> Split:
    if subset == "all":
        return test
    has_prefix = np.char.startswith(test.names.astype(str), subset + "_")
    if not has_prefix.any():
        if any(np.char.startswith(test.names.astype(str), p).any() for p in SPLIT_PREFIXES):
            raise DataError(f"data.test_subset={subset} but no test file names start with '{subset}_'")
        return test  # names carry no split: the whole folder is the test set
    return test.take(np.flatnonzero(has_prefix))


def _cap_per_class(s: Split, n: int, seed: int) -> Split:
    if n <= 0:
        return s
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(LABELS)):
        idx = np.flatnonzero(s.y == c)
        keep.append(rng.permutation(idx)[:n])
    return s.take(np.sort(np.concatenate(keep)))


def load_fer(root: str | Path, cache_dir: str | Path | None = None, val_fraction: float = 0.1,
             seed: int = 1337, test_subset: str = "all", max_per_class: int = 0,
             verbose: bool = True, labels: str = "fer2013", ferplus_csv: str | Path | None = None,
             label_blend: float = 0.0) -> FerData:
    """Load FER-2013 from ``root`` (any of the three forms) into fer_edge/train/val/test arrays.

    ``labels="ferplus"`` scores and trains on FER+'s ten annotators instead of FER-2013's one label
    (Kaggle folders only): the vote file ``ferplus_csv`` (default ``<root>/ferplus.csv``) gives each
    face its vote distribution; ``label_blend`` mixes FER-2013's label into the training target.
    The validation hold-out is the same faces in both label sets (drawn on FER-2013's labels)."""
    global _CACHE_DIR
    _CACHE_DIR = Path(cache_dir) if cache_dir else None
    form, path = detect_form(Path(root))
    if form == "csv":
        tr, te, skipped, _ = _load_csv(path)
    elif form == "kaggle":
        tr, te, skipped, _ = _load_folders(path / "train", path / "test")
        if labels == "ferplus":
            votes = ferplus.read_votes_for(Path(ferplus_csv) if ferplus_csv else path / "ferplus.csv", tr, te)
    else:
        tr, te, skipped, _ = _load_folders(path / "train", path / "validation")
    te = _filter_subset(te, test_subset)
    tr = _cap_per_class(tr, max_per_class, seed)
    te = _cap_per_class(te, max_per_class, seed + 1)
    for split_name, s in (("train", tr), ("test", te)):
        empty = [LABELS[i] for i, n in enumerate(s.counts()) if n == 0]
        if empty and max_per_class == 0:
            raise DataError(f"{path}: class(es) {', '.join(empty)} have no readable images in the {split_name} split")
    itr, iva = stratified_split(tr.y, val_fraction, seed)
    train, val, test13, left_out = tr.take(itr), tr.take(iva), None, None
    if labels == "ferplus":
        if form != "kaggle":  # checked after loading: the vote file is read only for the Kaggle layout
            raise DataError(f"{path}: FER+ labels need FER-2013 as Kaggle folders (train/, test/), the layout its "
                            "vote file names; use --set data.labels=fer2013 for this copy")
        test13 = te
        train, val, te, left_out = ferplus.apply_ferplus(train, val, te, votes, label_blend)
    data = FerData(train, val, te, form=form, source=str(path), skipped=skipped,
                   labels=LABEL_SETS[labels], test13=test13)
    if verbose:
        for k, v in skipped.items():
            if len(v):
                shown = "; ".join(map(str, v[:5]))
                log.warning(f"skipped {len(v)} {k.replace('_', ' ')}: {shown}{' ...' if len(v) > 5 else ''}")
        extra = ""
        if left_out is not None:
            extra = (f"; labels FER+ ({left_out['rows']} vote rows, {label_blend:g} of FER-2013's label blended in; "
                     f"faces without a clear FER+ label left out)")
        print(f"data: {form} at {path}: train {len(data.train)}, val {len(data.val)}, test {len(data.test)}{extra}")
    return data


def load_configured(data_cfg: DataConfig, root: str | Path | None = None, verbose: bool = True) -> FerData:
    """FER-2013 as the ``data`` section of config.yaml describes it; ``root`` (DATA=) replaces data.root."""
    d = data_cfg
    return load_fer(Path(root) if root else resolve_path(d.root), resolve_path(d.cache_dir), d.val_fraction,
                    d.seed, d.test_subset, d.max_per_class, verbose, d.labels,
                    resolve_path(d.ferplus_csv) if d.ferplus_csv else None, d.label_blend)


def load_split(data_cfg: DataConfig, split: str = "test", root: str | Path | None = None, with_fer2013: bool = False):
    """One split ('train', 'val' or 'test') of the configured data, for evaluation and calibration.
    ``with_fer2013``: also return the test faces under FER-2013's own labels (None unless FER+ labels)."""
    d = load_configured(data_cfg, root, verbose=False)
    try:
        out = {"train": d.train, "val": d.val, "test": d.test}[split]
    except KeyError:
        raise DataError(f"unknown split {split!r}: use train, val or test") from None
    if split == "val" and len(out) == 0:
        raise DataError("the validation split is empty: data.val_fraction is 0 (a final fit on all training "
                        "faces); set it above 0, e.g. --set data.val_fraction=0.1")
    if with_fer2013:
        return out, d.test13 if split == "test" else None
    return out

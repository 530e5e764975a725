"""FER+ labels: ten annotators' votes per FER-2013 face (Barsoum et al. 2016, microsoft/FERPlus, MIT licence).

The vote file has one row per image, ``path`` relative to the data root (``train/angry/Training_1.jpg``)
then the counts ``neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF``.
The votes are processed as FER+'s reference code (``src/ferplus.py``) does:

- ``distribution``: single votes are dropped; the top emotions are taken until they hold 75% of the
  remaining votes (at most three); a face whose top is unknown or not-a-face, or whose kept emotions
  hold no more than half of the votes, is left out. The training target is the kept votes, normalised.
- ``majority`` (FER+'s evaluation protocol): single votes dropped, the top emotion must hold more than
  half of the remaining votes (unknown and not-a-face counted); otherwise, or when the top is unknown or
  not-a-face, the face is left out.

``read_votes_for`` and ``apply_ferplus`` give the Kaggle folders' splits these labels (``train.data``).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_edge.common.labels import FERPLUS_LABELS, LABELS
from fer_edge.train.splits import DataError, Split

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
EMOTIONS = 8                                     # the first eight vote columns; then unknown, not-a-face
# vote column -> index into FERPLUS_LABELS
COLUMN_TO_LABEL = np.array([FERPLUS_LABELS.index(n) for n in
                            ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt")])
MAX_VOTES = 1000                                 # a row claiming more votes than this is malformed


class VotesError(ValueError):
    """The vote file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Votes:
    paths: tuple[str, ...]       # relative to the data root, '/'-separated
    counts: np.ndarray           # (N, 10) float32, in VOTE_COLUMNS order
    lines: tuple[int, ...]       # each row's line in the file (for messages)
    source: Path


def read_votes(path: Path) -> Votes:
    """Parse the vote file; a missing file or a malformed row raises VotesError naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise VotesError(f"FER+ vote file {path} not found: put ferplus.csv beside the data (data.root) or set "
                         "data.ferplus_csv, or train on FER-2013's own labels with --set data.labels=fer2013")
    paths, rows, lines = [], [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or tuple(h.strip() for h in header) != ("path", *VOTE_COLUMNS):
                raise VotesError(f"{path}:1: header must be path,{','.join(VOTE_COLUMNS)}")
            for line, row in enumerate(reader, start=2):
                if len(row) != 1 + len(VOTE_COLUMNS):
                    raise VotesError(f"{path}:{line}: {len(row)} fields, expected {1 + len(VOTE_COLUMNS)}")
                try:
                    votes = [int(v) for v in row[1:]]
                except ValueError:
                    raise VotesError(f"{path}:{line}: votes must be whole numbers, got {','.join(row[1:])[:80]}") from None
                if min(votes) < 0 or sum(votes) > MAX_VOTES:
                    raise VotesError(f"{path}:{line}: votes must be 0 or more and sum to at most {MAX_VOTES}")
                paths.append(row[0].strip().replace("\\", "/"))
                rows.append(votes)
                lines.append(line)
    except UnicodeDecodeError as exc:
        raise VotesError(f"{path}: not a text CSV file ({exc.reason})") from None
    except csv.Error as exc:
        raise VotesError(f"{path}: unreadable CSV ({exc})") from None
    if not rows:
        raise VotesError(f"{path}: no vote rows")
    return Votes(tuple(paths), np.asarray(rows, np.float32), tuple(lines), path)


def _drop_single(votes: np.ndarray) -> np.ndarray:
    return np.where(votes <= 1, 0.0, votes)


def distribution(votes: np.ndarray) -> np.ndarray | None:
    """The reference's training target of one face (8 probabilities, FERPLUS_LABELS order), or None."""
    raw = _drop_single(np.asarray(votes, np.float64)).copy()
    total = raw.sum()
    if total <= 0:
        return None
    kept = np.zeros_like(raw)
    taken, count, valid = 0.0, 0, True
    while taken < 0.75 * total and count < 3 and valid:
        top = raw.max()
        for i in range(raw.size):
            if raw[i] == top:
                kept[i], raw[i] = top, 0.0
                taken += kept[i]
                count += 1
                if i >= EMOTIONS:                 # unknown or not-a-face among the top
                    valid = False
                    if kept.sum() > top:           # emotions were ahead of it: it is left out
                        kept[i] = 0.0
                        count -= 1
                    break
    if kept.sum() <= 0.5 * total or count > 3 or kept[EMOTIONS:].sum() > 0 or kept[:EMOTIONS].sum() <= 0:
        return None
    out = np.zeros(EMOTIONS, np.float64)
    out[COLUMN_TO_LABEL] = kept[:EMOTIONS]
    return (out / out.sum()).astype(np.float32)


def majority(votes: np.ndarray) -> int | None:
    """FER+'s evaluation label of one face (index into FERPLUS_LABELS), or None when it is left out."""
    raw = _drop_single(np.asarray(votes, np.float64))
    total = raw.sum()
    i = int(raw.argmax())
    if total <= 0 or raw[i] <= 0.5 * total or i >= EMOTIONS:
        return None
    return int(COLUMN_TO_LABEL[i])


# ---------------------------------------------------------------- FER+ labels of the Kaggle splits
def _rel_paths(s: Split, folder: str) -> list[str]:
    return [f"{folder}/{LABELS[y]}/{n}" for y, n in zip(s.y.tolist(), s.names.tolist())]


def _with_ferplus(s: Split, rel: list[str], row_of: dict[str, int], votes: Votes, blend: float,
                  scored: bool) -> tuple[Split, int]:
    """FER+'s labels for one split: ``scored`` splits (validation, test) keep the faces with a majority
    label (FER+'s protocol) and their vote distribution, training keeps the faces with a vote distribution
    and learns (1 - blend) x it + blend x FER-2013's own label. Returns the split and the faces left out."""
    k = len(FERPLUS_LABELS)
    keep, ys, ts = [], [], []
    for i, p in enumerate(rel):
        row = row_of.get(p)
        if row is None:
            continue
        dist = distribution(votes.counts[row])
        label = majority(votes.counts[row]) if scored else None
        if (label if scored else dist) is None:
            continue
        target: np.ndarray
        if dist is None:                    # a majority but no distribution: scored on its majority alone
            target = np.eye(k, dtype=np.float32)[label]
        elif scored:                        # scored splits keep the annotators' own distribution
            target = dist
        else:
            target = dist * (1.0 - blend)
            target[int(s.y[i])] += blend
        keep.append(i)
        ys.append(label if scored else int(target.argmax()))
        ts.append(target)
    idx = np.asarray(keep, np.int64)
    out = Split(s.x[idx], np.asarray(ys, np.int64), s.names[idx], FERPLUS_LABELS,
                np.stack(ts) if ts else np.zeros((0, k), np.float32), s.y[idx])
    return out, len(s) - len(out)


def read_votes_for(csv_path: Path, train: Split, test: Split) -> Votes:
    """The vote file, checked against the whole Kaggle listing: every row must name one of its images."""
    try:
        votes = read_votes(csv_path)
    except VotesError as exc:
        raise DataError(str(exc)) from None
    known = set(_rel_paths(train, "train")) | set(_rel_paths(test, "test"))
    for p, line in zip(votes.paths, votes.lines):
        if p not in known:
            raise DataError(f"{votes.source}:{line}: {p[:120]!r} names no image of {csv_path.parent}; the vote file "
                            "must belong to this copy of FER-2013 (paths relative to data.root)")
    return votes


def apply_ferplus(train: Split, val: Split, test: Split, votes: Votes,
                  blend: float) -> tuple[Split, Split, Split, dict]:
    """FER+'s labels for the Kaggle splits (train and val carved from train/, test from test/)."""
    rel = {"train": _rel_paths(train, "train"), "val": _rel_paths(val, "train"), "test": _rel_paths(test, "test")}
    row_of = {p: i for i, p in enumerate(votes.paths)}
    out = {name: _with_ferplus(s, rel[name], row_of, votes, blend, scored=name != "train")
           for name, s in (("train", train), ("val", val), ("test", test))}
    return out["train"][0], out["val"][0], out["test"][0], {
        "rows": len(votes.paths), "left_out": {k: v[1] for k, v in out.items()}}

"""The label lists of the project: FER-2013's seven and FER+'s eight.

Order = model output order = Kaggle folder names sorted alphabetically (contempt, FER+'s eighth, last).
A converted model names its labels in its contract; everything downstream of the converter reads them there.
The original ``fer2013.csv`` uses numeric codes in a different order; ``CSV_CODE_TO_LABEL``
maps them.
"""
from __future__ import annotations

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# FER+ (ten annotators per face) adds contempt; FER-2013's seven keep their indices.
FERPLUS_LABELS: tuple[str, ...] = (*LABELS, "contempt")
LABEL_SETS: dict[str, tuple[str, ...]] = {"fer2013": LABELS, "ferplus": FERPLUS_LABELS}

# fer2013.csv "emotion" column: 0=Angry, 1=Disgust, 2=Fear, 3=Happy, 4=Sad, 5=Surprise, 6=Neutral
CSV_CODE_TO_LABEL: dict[int, str] = {
    0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral",
}

LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}
NUM_CLASSES = len(LABELS)

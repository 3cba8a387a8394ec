"""Product audio labels and how AudioSet classes (YAMNet-style models) map onto them.

A YAMNet-style model scores the 521 AudioSet classes; a product event is the max over its member
classes. Members are matched by display name (or by AudioSet id such as ``/m/07qf0zm``) against the
class-map CSV shipped with the model, so a model whose class order differs is still mapped right.

Choices (each trades recall against false alarms at home):
- ``smoke_co_alarm`` includes the parent class "Alarm": YAMNet often gives a real smoke alarm its
  highest score there rather than in "Smoke detector, smoke alarm", and missing a fire is the
  costliest error. "Beep, bleep" is left out: it fires on microwaves, washing machines, reversing
  trucks, phone notifications and a smoke alarm's own low-battery chirp, none of them an emergency.
  "Buzzer" and "Alarm clock" are left out for the same reason.
- ``glass_break`` uses "Glass", "Shatter" and "Breaking" but not "Chink, clink" (toasting glasses).
- ``dog_bark`` includes "Dog" and "Growling": a guard-dog reaction matters even without a clean bark.
- ``scream`` includes "Shout" and "Yell"; thresholds should be higher than for alarms, since
  children playing shout a lot.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import EXIT_USAGE, EdgeMediaError

PRODUCT_LABELS: tuple[str, ...] = ("smoke_co_alarm", "glass_break", "dog_bark", "baby_cry", "scream",
                                   "siren")
# Model outputs that are never events on their own (negatives the model was trained with).
NON_EVENT_LABELS: frozenset[str] = frozenset({"background", "speech", "silence"})

AUDIOSET_TO_EVENTS: Mapping[str, tuple[str, ...]] = {
    "smoke_co_alarm": ("Smoke detector, smoke alarm", "Fire alarm", "Alarm"),
    "glass_break": ("Glass", "Shatter", "Breaking"),
    "dog_bark": ("Bark", "Dog", "Bow-wow", "Yip", "Growling"),
    "baby_cry": ("Baby cry, infant cry", "Crying, sobbing"),
    "scream": ("Screaming", "Shout", "Yell"),
    "siren": ("Siren", "Civil defense siren", "Police car (siren)", "Ambulance (siren)",
              "Fire engine, fire truck (siren)", "Emergency vehicle"),
}

# Indices in YAMNet's public class map (yamnet_class_map.csv, 521 classes) of every class that
# AUDIOSET_TO_EVENTS uses, plus the near misses deliberately left out; used when a model comes
# without its own class map. The ordering follows the AudioSet ontology release YAMNet was trained on.
AUDIOSET_CLASS_INDEX: Mapping[str, int] = {
    "Speech": 0, "Shout": 6, "Yell": 9, "Screaming": 11, "Crying, sobbing": 19,
    "Baby cry, infant cry": 20, "Dog": 69, "Bark": 70, "Yip": 71, "Howl": 72, "Bow-wow": 73,
    "Growling": 74, "Car alarm": 304, "Emergency vehicle": 316, "Police car (siren)": 317,
    "Ambulance (siren)": 318, "Fire engine, fire truck (siren)": 319, "Alarm": 382,
    "Alarm clock": 389, "Siren": 390, "Civil defense siren": 391, "Buzzer": 392,
    "Smoke detector, smoke alarm": 393, "Fire alarm": 394, "Glass": 435, "Chink, clink": 436,
    "Shatter": 437, "Smash, crash": 463, "Breaking": 464, "Beep, bleep": 475, "Silence": 494,
}
AUDIOSET_NUM_CLASSES = 521


class LabelMapError(EdgeMediaError, ValueError):
    """A class map or label map that cannot be used (unknown class names, bad CSV)."""

    exit_code = EXIT_USAGE


def read_class_map(path: Path | str) -> dict[str, int]:
    """Parse a YAMNet-style ``index,mid,display_name`` CSV into {display name and mid: index}."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise LabelMapError(f"cannot read class map {path}: {exc}") from exc
    out: dict[str, int] = {}
    try:
        for row in rows:
            index = int(row["index"])
            out[row["display_name"].strip()] = index
            if row.get("mid"):
                out[row["mid"].strip()] = index
    except (KeyError, TypeError, ValueError) as exc:
        raise LabelMapError(f"class map {path} is not 'index,mid,display_name' CSV: {exc}") from exc
    if not out:
        raise LabelMapError(f"class map {path} has no classes")
    return out


def member_indices(label_map: Mapping[str, Sequence[str]], class_index: Mapping[str, int],
                   num_classes: int) -> dict[str, list[int]]:
    """Resolve each product label's member class names/ids to output columns.

    Unknown names are an error, not a silent zero score: a typo in a label map would otherwise
    switch an alarm off without anyone noticing.
    """
    resolved: dict[str, list[int]] = {}
    missing: list[str] = []
    for label, members in label_map.items():
        cols = []
        for name in members:
            if name not in class_index:
                missing.append(f"{label}: {name!r}")
            elif not 0 <= class_index[name] < num_classes:
                raise LabelMapError(f"class {name!r} index {class_index[name]} outside 0..{num_classes - 1}")
            else:
                cols.append(class_index[name])
        resolved[label] = sorted(set(cols))
    if missing:
        raise LabelMapError("label map names classes the model's class map lacks: " + "; ".join(missing))
    return resolved

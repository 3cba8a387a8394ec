"""The held-out HOME-LIKE negative pool: audio a household hears all day, from packages never used in
training, validation or threshold choice (``sources.py`` reads none of the pool-only packages, and the
test-only packages it does list are never read by ``train.py``).

What counts as evidence is distinct audio: every file is decoded, trimmed to ``max_seconds``, and an
exact duplicate of a file already taken (same decoded samples: a sound installed twice under two
names) is dropped, so the hours behind a false-event bound are hours of different sound. Nothing is
looped.

Categories (what the issue says fools a detector in a home), by package:
- TV-like speech: Fish Fillets' voiced dialogue (``fillets-ng-data``, GPL-2+), Asterisk's English prompts
  (test-only in sources.py), KTuberling's spoken words in many languages (``ktuberling-data``, GPL-2+);
- music, electronic included: Fish Fillets' and Extreme Tux Racer's soundtracks, ASC's music,
  LMMS' loops and instrument samples (``lmms-common``, GPL-2+: synth leads, basses, beats);
- beeps, chimes, ringtones: chat and desktop notification sounds (Pidgin, Psi+, EiskaltDC++), Blinken's
  electronic tones, the freedesktop / Yaru / Deepin sound themes (phone rings, alarm clock, bells);
- animals, birdsong, ambience: Tux Paint's stamp sounds (birds, farm and wild animals, vehicles, weather).
Kitchen appliances, a vacuum cleaner, children playing and real TV programmes are not in any package we
found: the pool does not cover them (MODEL_CARD.md, "What the pool lacks").
"""
from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass

import numpy as np

import sources

SR = sources.SR


@dataclass(frozen=True)
class PoolSource:
    package: str
    category: str
    roots: tuple[str, ...]  # installed path prefixes
    licence: str
    max_seconds: float = 60.0
    exclude: tuple[str, ...] = ()  # path substrings never used (e.g. the package's own positives)


POOL = [
    PoolSource("fillets-ng-data", "tv_speech", ("/usr/share/games/fillets-ng/sound/",), "GPL-2+", 30.0),
    PoolSource("fillets-ng-data", "music", ("/usr/share/games/fillets-ng/music/",), "GPL-2+", 600.0),
    PoolSource("ktuberling-data", "tv_speech", ("/usr/share/ktuberling/sounds/",), "GPL-2+", 10.0),
    PoolSource("asterisk-core-sounds-en-wav", "tv_speech", ("/usr/share/asterisk/sounds/en_US_f_Allison/",),
               "CC-BY-SA-3.0", 30.0),
    PoolSource("extremetuxracer-data", "music", ("/usr/share/games/etr/music/",), "GPL-2+", 600.0),
    PoolSource("extremetuxracer-data", "effects", ("/usr/share/games/etr/sounds/",), "GPL-2+", 30.0),
    PoolSource("asc-music", "music", ("/usr/share/games/asc/music/",), "GPL-2+", 600.0),
    PoolSource("lmms-common", "electronic_music", ("/usr/share/lmms/samples/",), "GPL-2+", 30.0),
    PoolSource("chromium-bsu-data", "effects", ("/usr/share/games/chromium-bsu/",), "Artistic / Clarified", 30.0),
    PoolSource("blinken", "beeps", ("/usr/share/blinken/sounds/",), "GPL-2+", 30.0),
    PoolSource("pidgin-data", "beeps", ("/usr/share/sounds/purple/",), "GPL-2+", 30.0),
    PoolSource("psi-plus-sounds", "beeps", ("/usr/share/psi-plus/sound/",), "GPL-2+", 30.0),
    PoolSource("eiskaltdcpp-sounds", "beeps", ("/usr/share/eiskaltdcpp/sounds/",), "GPL-3+", 30.0),
    PoolSource("sound-theme-freedesktop", "ringtones", ("/usr/share/sounds/freedesktop/",), "CC-BY-SA-3.0 / GPL-2+"),
    PoolSource("yaru-theme-sound", "ringtones", ("/usr/share/sounds/Yaru/",), "CC-BY-SA-4.0"),
    PoolSource("deepin-sound-theme", "ringtones", ("/usr/share/sounds/deepin/",), "GPL-3+"),
    # the stamps' dog and fire truck are real positives (sources.RULES), their spoken descriptions speech
    PoolSource("tuxpaint-stamps-default", "animals_ambience", ("/usr/share/tuxpaint/stamps/",), "GPL-2",
               30.0, exclude=("/dogs/dog.ogg", "/emergency/firetruck.ogg", "_desc", "/symbols/")),
]
APT_INSTALL = "apt-get install -y --no-install-recommends " + " ".join(sorted({p.package for p in POOL}))


def _files(src: PoolSource) -> list[str]:
    listed = subprocess.run(["dpkg", "-L", src.package], capture_output=True, text=True).stdout.split("\n")
    return sorted(f for f in listed if f.startswith(src.roots) and f.lower().endswith(sources.AUDIO_EXT)
                  and "!" not in f  # sources.read_bytes reads "!" as a container path
                  and not any(x in f for x in src.exclude))


@dataclass(frozen=True)
class PoolClip:
    package: str
    category: str
    path: str
    audio: np.ndarray


def load() -> tuple[list[PoolClip], dict]:
    """Every distinct pool file (decoded, trimmed) and an audit: files per package, duplicates dropped,
    packages missing."""
    train_pkgs = {p.name for p in sources.PACKAGES if p.split == "train"}
    assert not train_pkgs & {p.package for p in POOL}, "a pool package is used in training"
    seen: set[str] = set()
    clips, audit = [], {"missing": [], "duplicates": 0, "too_short": 0}
    for src in POOL:
        if sources.package_version(src.package) is None:
            audit["missing"].append(src.package)
            continue
        for path in _files(src):
            x = sources.load_audio(path, src.max_seconds)
            if x.size < SR // 2 or float(np.sqrt(np.mean(x ** 2))) < 1e-4:
                audit["too_short"] += 1
                continue
            digest = hashlib.sha1(np.round(x * 3e4).astype(np.int16).tobytes()).hexdigest()
            if digest in seen:
                audit["duplicates"] += 1
                continue
            seen.add(digest)
            clips.append(PoolClip(src.package, src.category, path, x))
    return clips, audit

"""Real sound clips from Debian packages, with package, version, licence, label and split per file.

Nothing is downloaded here: the clips are read from the installed packages (install them with the
command that ``check()`` prints, see MODEL_CARD.md). Some packages keep their sounds inside a
container: 0 A.D. in ``public.zip``, GCompris in Qt resource (``.rcc``) files; such a clip's path is
``container!member``.

Split design: whole *packages* are held out for the test set (wesnoth, supertuxkart, tuxpaint,
tuxmath, frozen-bubble, pingus, the freedesktop/yaru/deepin sound themes, asterisk prompts), so the test
clips come from other games / recordists than anything trained on. Where a label has no real clip in a
held-out package, one *file* of a training package is moved to test (never windows of one file in two
splits). Training packages give the validation split by a stable hash of the path (about 20 %, at
least one file per event label).

Run ``python models/audio_events/sources.py`` to check the packages and print counts per label/split.
"""
from __future__ import annotations

import fnmatch
import functools
import hashlib
import io
import os
import re
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass

import numpy as np

SR = 16000
AUDIO_EXT = (".ogg", ".oga", ".wav", ".flac", ".mp3", ".opus")
LABELS_PRODUCT = ("smoke_co_alarm", "glass_break", "dog_bark", "baby_cry", "scream", "siren")
EXCLUDE = "exclude"


@dataclass(frozen=True)
class Package:
    name: str
    split: str  # "train" (train + validation by hash) or "test"
    roots: tuple[str, ...]  # path prefixes (installed) whose audio files are used
    licence: str  # fallback when the copyright file is not machine-readable
    max_seconds: float = 60.0  # how much of each file is used (long music tracks)
    # (installed prefix, source-tree prefix) when the copyright file names source paths that the
    # installed paths do not end with (Lugaru installs Data/Sounds/ as .../lugaru/Sounds/)
    dep5_source: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class Clip:
    package: str
    version: str
    path: str
    licence: str
    label: str
    split: str
    max_seconds: float


PACKAGES = [
    # --- training packages ---
    Package("0ad-data", "train", ("/usr/share/games/0ad/mods/public/public.zip!audio/",), "CC-BY-SA-3.0", 30.0),
    Package("gcompris-qt-data", "train", ("/usr/share/gcompris-qt/rcc/",), "GPL-3+"),
    Package("supertux-data", "train", ("/usr/share/games/supertux2/sounds/", "/usr/share/games/supertux2/music/"),
            "GPL-3+", 30.0),
    Package("lincity-ng-data", "train", ("/usr/share/games/lincity-ng/sounds/",), "GPL-2+"),
    Package("hedgewars-data", "train", ("/usr/share/games/hedgewars/Data/Sounds/",
                                        "/usr/share/games/hedgewars/Data/Music/"), "GFDL-1.3", 30.0),
    Package("freeciv-data", "train", ("/usr/share/games/freeciv/stdsounds/", "/usr/share/games/freeciv/stdmusic/"),
            "GPL-2+"),
    Package("colobot-common-sounds", "train", ("/usr/share/games/colobot/sounds/", "/usr/share/games/colobot/music/"),
            "GPL-3+", 30.0),
    Package("oxygen-sounds", "train", ("/usr/share/sounds/",), "LGPL-3.0-or-later"),
    Package("lomiri-sounds", "train", ("/usr/share/sounds/lomiri/",), "CC-BY-SA-3.0 / CC0-1.0 / CC-BY-4.0"),
    # a real human voice for the speech negative (June Wallack; the test prompts are another speaker)
    Package("asterisk-core-sounds-fr-wav", "train", ("/usr/share/asterisk/sounds/fr_CA_f_June/",), "CC-BY-SA-3.0"),
    # added in 1.1: more real barks, glass, screams, a cry; children's spoken words; music; phone rings
    Package("qabcs-data", "train", ("/usr/share/qabcs/abcs/all/noises/", "/usr/share/qabcs/abcs/en/sounds/words/",
                                    "/usr/share/qabcs/abcs/de/sounds/words/", "/usr/share/qabcs/abcs/ru/sounds/words/"),
            "GPL-3+"),
    Package("lugaru-data", "train", ("/usr/share/games/lugaru/Sounds/",), "CC-BY-SA-3.0", 30.0,
            ("/usr/share/games/lugaru/", "Data/")),
    Package("xemacs21-basesupport", "train", ("/usr/share/xemacs21/xemacs-packages/etc/sounds/",), "GPL"),
    Package("etw-data", "train", ("/usr/share/games/etw/",), "GPL-2+"),
    Package("trophy-data", "train", ("/usr/share/games/trophy/sounds/",), "GPL-2"),
    Package("minetest-data", "train", ("/usr/share/games/minetest/games/",), "CC-BY-SA-3.0"),
    Package("enigma-data", "train", ("/usr/share/games/enigma/",), "GPL-2+", 30.0),
    Package("freedink-data", "train", ("/usr/share/games/dink/dink/Sound/",), "CC-BY-SA-3.0", 30.0),
    Package("hannah-data", "train", ("/usr/share/games/hannah/",), "GPL-2", 30.0),
    Package("btanks-data", "train", ("/usr/share/games/btanks/data/sounds/", "/usr/share/games/btanks/data/tunes/"),
            "GPL-2+", 30.0),
    Package("netpanzer-data", "train", ("/usr/share/games/netpanzer/sound/",), "GPL-2+"),
    Package("warzone2100-music", "train", ("/usr/share/games/warzone2100/music/",), "GPL-2+", 30.0),
    Package("gnome-audio", "train", ("/usr/share/sounds/",), "CC-BY-SA-2.0 / CC-BY-3.0"),
    Package("linphone-common", "train", ("/usr/share/sounds/linphone/",), "GPL-3+"),
    # added in 1.2 (issue 12): TripleA's real air-raid siren and its war / crowd / horse / music effects
    # (hard negatives for "game weapons"), LibreOffice's gallery sounds (clinking glasses, birds, a whale,
    # applause: hard negatives for "clinking" and "birdsong")
    Package("triplea", "train", ("/usr/share/games/triplea/assets/sounds/",), "GPL-2+", 30.0),
    Package("libreoffice-common", "train", ("/usr/lib/libreoffice/share/gallery/sounds/",), "MPL-2.0"),
    # --- held-out (test) packages ---
    Package("wesnoth-1.16-data", "test", ("/usr/share/games/wesnoth/1.16/data/core/sounds/",), "GPL-2+"),
    Package("supertuxkart-data", "test", ("/usr/share/games/supertuxkart/data/sfx/",
                                          "/usr/share/games/supertuxkart/data/music/"), "GPL-3+", 120.0),
    Package("tuxpaint-stamps-default", "test", ("/usr/share/tuxpaint/stamps/",), "GPL-2"),
    Package("tuxpaint-data", "test", ("/usr/share/tuxpaint/sounds/",), "GPL-2+"),
    Package("tuxmath-data", "test", ("/usr/share/tuxmath/sounds/",), "GPL-3+", 120.0),
    Package("frozen-bubble-data", "test", ("/usr/share/games/frozen-bubble/snd/",), "GPL-2", 120.0),
    Package("pingus-data", "test", ("/usr/share/games/pingus/sounds/",), "GPL-3+"),
    Package("sound-theme-freedesktop", "test", ("/usr/share/sounds/freedesktop/",), "CC-BY-SA-3.0 / GPL-2+"),
    Package("yaru-theme-sound", "test", ("/usr/share/sounds/Yaru/",), "CC-BY-SA-4.0"),
    Package("deepin-sound-theme", "test", ("/usr/share/sounds/deepin/",), "GPL-3+"),
    Package("asterisk-core-sounds-en-wav", "test", ("/usr/share/asterisk/sounds/en_US_f_Allison/",), "CC-BY-SA-3.0"),
    # added in 1.1 (held out): Scratch's real recordings, Scorched 3D's sirens / barks / screams, glass, music
    Package("scratch", "test", ("/usr/share/scratch/Media/Sounds/",), "CC-BY-SA-3.0", 120.0),
    Package("mate-media-common", "test", ("/usr/share/sounds/mate/",), "LGPL-2+"),
    Package("scorched3d-data", "test", ("/usr/share/games/scorched3d/data/globalmods/",), "CC-BY-SA-3 / GPL-2+", 120.0),
    Package("freedroidrpg-data", "test", ("/usr/share/freedroidrpg/data/sound/",), "GPL-2+", 120.0),
    Package("brainparty-data", "test", ("/usr/share/games/brainparty/",), "GPL-3+"),
    Package("wesnoth-1.16-music", "test", ("/usr/share/games/wesnoth/1.16/data/core/music/",), "GPL-2+", 120.0),
]

# First matching rule wins: (package, glob on the clip path, label). Unmatched files are background.
RULES = [
    # dog_bark: GCompris (train), Tux Paint (test)
    ("gcompris-qt-data", "*explore_farm_animals/resource/animals/dog.ogg", "dog_bark"),
    ("gcompris-qt-data", "*memory-sound/resource/LRBark_*", "dog_bark"),
    ("tuxpaint-stamps-default", "*/animals/mammals/dogs/dog.ogg", "dog_bark"),
    # scream: 0 A.D. death cries (train), Wesnoth death cries and the Wilhelm scream (test)
    ("0ad-data", "*audio/actor/human/death/*", "scream"),
    ("wesnoth-1.16-data", "*/human-die-*", "scream"),
    ("wesnoth-1.16-data", "*/human-female-die-*", "scream"),
    ("wesnoth-1.16-data", "*/human-old-die-*", "scream"),
    ("supertuxkart-data", "*/WilhelmScream.ogg", "scream"),
    # siren: LinCity fire station siren wind-up (train), Tux Paint fire truck (test)
    ("lincity-ng-data", "*/FireStation3.wav", "siren"),
    ("tuxpaint-stamps-default", "*/vehicles/emergency/firetruck.ogg", "siren"),
    # glass_break: SuperTux crystal shatter (train) and ice crash (test; no held-out package has one)
    ("supertux-data", "*/sounds/crystallo-shatter.ogg", "glass_break"),
    ("supertux-data", "*/sounds/icecrash.ogg", "glass_break@test"),
    # added in 1.1 (see MODEL_CARD.md; each judged from spectrograms and f0 tracks)
    ("qabcs-data", "*/noises/dog.ogg", "dog_bark"),
    ("qabcs-data", "*/noises/doll.ogg", EXCLUDE),  # a crying/talking toy doll
    ("qabcs-data", "*/noises/vase.ogg", EXCLUDE),  # impacts with ringing: maybe breaking, maybe not
    ("qabcs-data", "*/sounds/words/*", "speech"),
    ("lugaru-data", "*/Bark*.ogg", "dog_bark"),
    ("lugaru-data", "*/Break.ogg", EXCLUDE),  # unidentified breaking sound
    ("xemacs21-basesupport", "*/bark.wav", "dog_bark"),
    ("xemacs21-basesupport", "*/cry.wav", "baby_cry"),
    ("xemacs21-basesupport", "*/low-smash.wav", EXCLUDE),  # a smash, maybe glass
    ("xemacs21-basesupport", "*/README.wav", EXCLUDE),  # FFmpeg cannot read it
    ("enigma-data", "*/st-magic.wav", EXCLUDE),  # FFmpeg cannot read it
    ("etw-data", "*/snd/dog.wav", "dog_bark"),
    ("trophy-data", "*/dog.wav", "dog_bark"),
    ("minetest-data", "*/default_break_glass.*.ogg", "glass_break"),
    ("enigma-data", "*/shatter.wav", "glass_break"),
    ("freedink-data", "*/wscream.wav", "scream"),
    ("hannah-data", "*/scream.wav", "scream"),
    ("btanks-data", "*/kamikaze-scream.ogg", "scream"),
    ("btanks-data", "*/deadman*", EXCLUDE),  # acted death cries (see Wesnoth below)
    ("netpanzer-data", "*/scream_1.wav", "scream"),
    ("netpanzer-data", "*/scream_*", EXCLUDE),  # byte-identical copies of scream_1
    ("linphone-common", "*/hello*.wav", "speech"),
    ("scratch", "*/Animal/Dog*", "dog_bark"),
    ("scratch", "*/Human/BabyCry*", "baby_cry"),
    ("scratch", "*/Human/Scream-*", "scream"),
    ("mate-media-common", "*/bark.ogg", "dog_bark"),
    ("scorched3d-data", "*/misc/dog*.wav", "dog_bark"),
    ("scorched3d-data", "*/misc/policecar.wav", "siren"),
    ("scorched3d-data", "*/misc/firetruck.wav", "siren"),
    ("scorched3d-data", "*/misc/scream*.wav", "scream"),
    ("freedroidrpg-data", "*/Glass_Break.ogg", "glass_break"),
    ("brainparty-data", "*/glass_break.wav", "glass_break"),
    # added in 1.2 (issue 12; each judged from its spectrogram, f0 track and on/off pattern)
    # 0 A.D.'s war-dog unit "voices" were labelled speech by the rule below. civ_dog_bark: one 300 ms
    # harmonic + noisy burst (f0 ~520 Hz falling, energy to 7 kHz, a room decay): a real single bark.
    # civ_dog_move: one 130 ms burst, sharp onset, harmonic stack (f0 ~250 Hz) in noise: a short low "woof"
    ("0ad-data", "*audio/voice/global/civ_dog_bark.ogg", "dog_bark"),
    ("0ad-data", "*audio/voice/global/civ_dog_move.ogg", "dog_bark"),
    # qabcs' "dogmatix" (Asterix's dog) was background: 2.5 s of continuous voicing at f0 ~200 Hz with
    # many harmonics and a slow pulsing, a whine/howl or a human imitating one; not a bark, not a negative
    ("qabcs-data", "*/noises/dogmatix.ogg", EXCLUDE),
    # TripleA (GPL-2+): a real mechanical air-raid siren winding up (harmonic stack, f0 rising ~300 ->
    # 500 Hz over 4 s, the LinCity fire-station siren's kind); the second file is a byte-identical copy
    ("triplea", "*/generic/game_start/game_start_01_air_raid_alarm.mp3", "siren"),
    ("triplea", "*/required_your_turn_series_01_air_raid_alarm.mp3", EXCLUDE),
    ("triplea", "*/others/alien_siren.mp3", EXCLUDE),  # synthetic sci-fi pulses with rising pitch, "siren"
    ("triplea", "*/territory_capture_land_01_massacre.mp3", EXCLUDE),  # many high voiced tracks: screams
    ("triplea", "*/battle_land_01_infantry_being_shot_at.mp3", EXCLUDE),  # gunfire with shouts
    # the rest is background: gunfire, explosions, aircraft, a dive klaxon (fixed-pitch 1 s blasts, not a
    # sweeping siren), crowd cheering, horses, anthems; a hawk's call (real bird) stays background too.
    # Byte-identical copies of one sound (the game files one sound under several events) are dropped so
    # that no sound is in train and val at once:
    *[("triplea", f"*/{d}", EXCLUDE) for d in (
        "future/battle_sea_subs/*", "future/required_your_turn_series/*radiation_alert.mp3",
        "future/territory_capture_land/*", "future/territory_capture_sea/*",
        "preindustrial/required_your_turn_series/*1812_overture.mp3", "classical/battle_sea_subs/*",
        "preindustrial/battle_sea_subs/*", "generic/territory_capture_land/*_02_drums.mp3",
        "generic/territory_capture_sea/*", "future/bombing_rocket/*", "future/bombing_strategic/*",
        "future/political_action_successful/*", "preindustrial/territory_capture_blitz/*")],
    # LibreOffice (MPL-2.0) gallery: glasses.wav is glasses clinking (steady ringing partials, no
    # breaking noise): a hard negative for glass_break, like nature1/2 (birdsong), wallewal (whale calls),
    # kling/gong (bells). ups.wav ("oops") is 1.3 s of broadband noise with a second burst: maybe
    # something breaking, so neither class
    ("libreoffice-common", "*/ups.wav", EXCLUDE),
    # speech: game voices (train), Asterisk prompts (test)
    ("0ad-data", "*audio/voice/*", "speech"),
    ("hedgewars-data", "*/voices/Default/*", "speech"),
    ("hedgewars-data", "*/voices/*", EXCLUDE),  # other packs: same lines, many copies
    ("asterisk-core-sounds-en-wav", "*/silence/*", EXCLUDE),
    ("asterisk-core-sounds-en-wav", "*", "speech"),
    ("asterisk-core-sounds-fr-wav", "*/silence/*", EXCLUDE),
    ("asterisk-core-sounds-fr-wav", "*", "speech"),
    # ambiguous for our labels: neither positive nor negative
    ("lincity-ng-data", "*/FireStation[12].wav", EXCLUDE),  # engine / bell, unclear
    ("supertuxkart-data", "*/sfx/break.ogg", EXCLUDE),  # long crash, may be glass
    ("tuxmath-data", "*/alarm.wav", EXCLUDE),  # rising whoop alarm
    ("wesnoth-1.16-data", "*/wail*", EXCLUDE),  # ghost wail, scream-like
    # acted (human-voiced) death cries of fantasy humanoids: the same kind of recording as the death
    # cries labelled scream, so neither a clean negative nor a clean positive
    *[("wesnoth-1.16-data", f"*/{race}-die*", EXCLUDE)
      for race in ("dwarf", "elf", "orc", "orc-small", "goblin", "troll", "ogre", "naga", "mermen", "mermaid")],
    ("tuxpaint-stamps-default", "*_desc*", EXCLUDE),  # spoken descriptions, dozens of languages
    ("tuxpaint-stamps-default", "*/symbols/*", EXCLUDE),  # spoken letters/numbers
    ("gcompris-qt-data", "*/explore_world_music/*", "background"),
]

# Clips the data set needs: (package, path glob, minimum count). check() fails naming the install fix.
EXPECTED = [
    ("gcompris-qt-data", "*dog.ogg", 1), ("gcompris-qt-data", "*LRBark_*", 2),
    ("tuxpaint-stamps-default", "*/dogs/dog.ogg", 1), ("0ad-data", "*audio/actor/human/death/*", 60),
    ("wesnoth-1.16-data", "*/human-*die-*", 6), ("supertuxkart-data", "*/WilhelmScream.ogg", 1),
    ("lincity-ng-data", "*/FireStation3.wav", 1), ("tuxpaint-stamps-default", "*/firetruck.ogg", 1),
    ("supertux-data", "*/crystallo-shatter.ogg", 1), ("supertux-data", "*/icecrash.ogg", 1),
    ("asterisk-core-sounds-en-wav", "*", 100), ("asterisk-core-sounds-fr-wav", "*", 100),
    ("0ad-data", "*audio/music/*", 20),
    ("supertuxkart-data", "*/music/*", 20),
    ("scratch", "*/Animal/Dog*", 2), ("scratch", "*/Human/BabyCry*", 1), ("scratch", "*/Human/Scream-*", 3),
    ("scorched3d-data", "*/misc/policecar.wav", 1), ("scorched3d-data", "*/misc/firetruck.wav", 1),
    ("scorched3d-data", "*/misc/scream*.wav", 5), ("scorched3d-data", "*/misc/dog*.wav", 3),
    ("minetest-data", "*/default_break_glass.*.ogg", 3), ("lugaru-data", "*/Bark*.ogg", 4),
    ("xemacs21-basesupport", "*/cry.wav", 1), ("freedroidrpg-data", "*/Glass_Break.ogg", 1),
    ("brainparty-data", "*/glass_break.wav", 1),
    ("0ad-data", "*audio/voice/global/civ_dog_*.ogg", 2), ("triplea", "*/game_start_01_air_raid_alarm.mp3", 1),
    ("triplea", "*", 100), ("libreoffice-common", "*/gallery/sounds/glasses.wav", 1),
    ("libreoffice-common", "*/gallery/sounds/*", 30),
]

APT_INSTALL = "apt-get install -y --no-install-recommends " + " ".join(p.name for p in PACKAGES) + " espeak-ng"


def package_version(name: str) -> str | None:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


# --- containers -------------------------------------------------------------------------------------

def _rcc_entries(path: str) -> dict[str, bytes]:
    """Files inside a Qt binary resource (.rcc), format versions 1-3, zlib-compressed entries."""
    b = open(path, "rb").read()
    if b[:4] != b"qres":
        return {}
    ver, tree, data, names = struct.unpack(">IIII", b[4:20])
    esz = 14 if ver == 1 else 22
    out: dict[str, bytes] = {}

    def name(off: int) -> str:
        (n,) = struct.unpack(">H", b[names + off:names + off + 2])
        return b[names + off + 6:names + off + 6 + 2 * n].decode("utf-16-be")

    def walk(idx: int, prefix: str) -> None:
        e = tree + idx * esz
        noff, flags = struct.unpack(">IH", b[e:e + 6])
        nm = name(noff) if idx else ""
        if flags & 2:  # directory
            cnt, first = struct.unpack(">II", b[e + 6:e + 14])
            for i in range(cnt):
                walk(first + i, prefix + nm + "/")
        else:
            (doff,) = struct.unpack(">I", b[e + 10:e + 14])
            (size,) = struct.unpack(">I", b[data + doff:data + doff + 4])
            raw = b[data + doff + 4:data + doff + 4 + size]
            out[prefix + nm] = zlib.decompress(raw[4:]) if flags & 1 else raw

    walk(0, "")
    return out


@functools.lru_cache(maxsize=8)
def _rcc_cached(path: str) -> dict[str, bytes]:
    return {k: v for k, v in _rcc_entries(path).items() if k.lower().endswith(AUDIO_EXT)}


def _list_package(pkg: Package) -> list[str]:
    files = subprocess.run(["dpkg", "-L", pkg.name], capture_output=True, text=True).stdout.split("\n")
    out = []
    for root in pkg.roots:
        if "!" in root:  # zip member prefix
            container, prefix = root.split("!", 1)
            if os.path.exists(container):
                with zipfile.ZipFile(container) as z:
                    out += [f"{container}!{m}" for m in z.namelist()
                            if m.startswith(prefix) and m.lower().endswith(AUDIO_EXT)]
            continue
        for f in files:
            if not f.startswith(root) or not os.path.isfile(f):
                continue
            if f.lower().endswith(AUDIO_EXT):
                out.append(f)
            elif f.endswith(".rcc"):
                out += [f"{f}!{m}" for m in _rcc_cached(f)]
    return sorted(set(out))


def read_bytes(path: str) -> bytes:
    if "!" not in path:
        return open(path, "rb").read()
    container, member = path.split("!", 1)
    if container.endswith(".zip"):
        return _zip_cached(container).read(member)
    return _rcc_cached(container)[member]


@functools.lru_cache(maxsize=4)
def _zip_cached(path: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(path)


def _decode(data: bytes, limit: int | None) -> list[np.ndarray]:
    import av

    chunks, total = [], 0
    # some game files carry Latin-1 tags; FFmpeg would decode them fine, PyAV's strict UTF-8 would not
    with av.open(io.BytesIO(data), metadata_errors="replace") as c:
        rs = av.AudioResampler(format="flt", layout="mono", rate=SR)
        try:
            for frame in c.decode(audio=0):
                for f in rs.resample(frame):
                    chunks.append(f.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if limit and total >= limit:
                    break
        except av.error.FFmpegError:  # a damaged packet (one game file has one): keep what decoded
            pass
        for f in rs.resample(None):
            chunks.append(f.to_ndarray().reshape(-1))
    return chunks


def load_audio(path: str, max_seconds: float | None = None) -> np.ndarray:
    """Decode any FFmpeg-readable clip to 16 kHz mono float32 (FFmpeg's resampler via PyAV)."""
    import av

    limit = int(max_seconds * SR) if max_seconds else None
    try:
        chunks = _decode(read_bytes(path), limit)
    except av.error.FFmpegError as exc:  # not audio FFmpeg can read (two files): reported and skipped
        print(f"skipped unreadable {path}: {exc}", file=sys.stderr)
        chunks = []
    x = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return x[:limit] if limit else x


# --- licences from machine-readable (DEP-5) copyright files ------------------------------------------

@functools.cache
def _dep5_stanzas(pkg: str) -> list[tuple[list[str], str]]:
    path = f"/usr/share/doc/{pkg}/copyright"
    if not os.path.exists(path):
        return []
    text = open(path, encoding="utf-8", errors="replace").read()
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        m_files = re.search(r"^Files:(.*(?:\n[ \t]+.*)*)", block, re.M)
        m_lic = re.search(r"^License:[ \t]*(\S.*)$", block, re.M)
        if m_files and m_lic:
            stanzas.append((m_files.group(1).split(), m_lic.group(1).strip()))
    return stanzas


def licence_for(pkg: Package, path: str) -> str:
    """Last matching DEP-5 stanza (as the format says), matched against every suffix of the path."""
    member = path.replace("!", "/")
    installed, source = pkg.dep5_source
    if installed and member.startswith(installed):
        member = source + member[len(installed):]
    parts = member.strip("/").split("/")
    suffixes = ["/".join(parts[i:]) for i in range(len(parts))]
    found = None
    for globs, lic in _dep5_stanzas(pkg.name):
        for g in globs:
            if g == "*" or any(fnmatch.fnmatchcase(s, g) for s in suffixes if "debian" not in g):
                if not g.startswith("debian/"):
                    found = lic
    return found or pkg.licence


# --- catalogue -----------------------------------------------------------------------------------

def _stable_hash(s: str) -> int:
    return int(hashlib.sha256(s.encode()).hexdigest()[:8], 16)


def _label_for(pkg: Package, path: str) -> tuple[str, str]:
    for name, pattern, label in RULES:
        if name == pkg.name and fnmatch.fnmatchcase(path, pattern):
            if label.endswith("@test"):
                return label[:-5], "test"
            return label, pkg.split
    return "background", pkg.split


def collect() -> list[Clip]:
    """Every usable clip of the installed packages with its label and split (deterministic)."""
    clips: list[Clip] = []
    for pkg in PACKAGES:
        version = package_version(pkg.name)
        if version is None:
            continue
        for path in _list_package(pkg):
            label, split = _label_for(pkg, path)
            if label == EXCLUDE:
                continue
            clips.append(Clip(pkg.name, version, path, licence_for(pkg, path), label, split, pkg.max_seconds))
    # validation: ~20 % of each label's training files by a stable hash, at least one when there are >= 3
    out: list[Clip] = []
    by_label: dict[str, list[Clip]] = {}
    for c in clips:
        if c.split == "train":
            by_label.setdefault(c.label, []).append(c)
    val_paths = set()
    for group in by_label.values():
        ranked = sorted(group, key=lambda c: _stable_hash(c.path))
        k = max(1 if len(group) >= 3 else 0, round(0.2 * len(group)))
        val_paths.update(c.path for c in ranked[:k])
    for c in clips:
        out.append(Clip(c.package, c.version, c.path, c.licence, c.label,
                        "val" if c.path in val_paths else c.split, c.max_seconds))
    return out


def check() -> list[Clip]:
    """Collect and verify that the expected packages and clips are there; raise with the fix if not."""
    missing_pkgs = [p.name for p in PACKAGES if package_version(p.name) is None]
    clips = collect()
    problems = []
    for name, pattern, minimum in EXPECTED:
        n = sum(1 for c in clips if c.package == name and fnmatch.fnmatchcase(c.path, pattern))
        if n < minimum:
            problems.append(f"{name}: {pattern} found {n}, expected >= {minimum}")
    if subprocess.run(["which", "espeak-ng"], capture_output=True).returncode != 0:
        problems.append("espeak-ng not installed")
    if missing_pkgs or problems:
        raise SystemExit("missing sound sources:\n  " + "\n  ".join(missing_pkgs + problems)
                         + f"\ninstall them (as root):\n  apt-get update && {APT_INSTALL}")
    return clips


# --- espeak-ng speech (negative class) -------------------------------------------------------------

SENTENCES = [
    "Could you pass me the remote control please", "The weather will be sunny tomorrow afternoon",
    "I think we left the keys in the car", "Dinner is ready, come to the kitchen",
    "Have you seen my phone anywhere", "The meeting was moved to Thursday at nine",
    "Turn the music down a little bit", "We need milk, eggs, bread and some apples",
    "Good night, sleep well and see you in the morning", "The train to the city leaves at half past seven",
    "This is the news at six o'clock", "Please leave a message after the tone",
    "One two three four five six seven eight nine ten", "What time does the film start tonight",
]
VOICES = ["en", "en-us", "en-gb-x-rp", "de", "fr", "es", "it", "nl", "pl", "pt"]


def espeak_clips(seed: int, count: int, workdir: str) -> list[tuple[str, np.ndarray]]:
    """Synthetic speech (espeak-ng, installed locally) with varied voice, speed, pitch; seeded."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        voice = VOICES[rng.integers(len(VOICES))] + (f"+f{rng.integers(1, 5)}" if rng.random() < 0.5 else "")
        text = SENTENCES[rng.integers(len(SENTENCES))]
        wav = os.path.join(workdir, f"espeak_{seed}_{i}.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(int(rng.integers(120, 200))),
                        "-p", str(int(rng.integers(20, 80))), "-w", wav, text], check=True, capture_output=True)
        out.append((f"espeak-ng:{voice}:{text}", load_audio(wav)))
    return out


def main() -> None:
    clips = check()
    counts: dict[tuple[str, str], int] = {}
    for c in clips:
        counts[(c.label, c.split)] = counts.get((c.label, c.split), 0) + 1
    labels = sorted({c.label for c in clips})
    print(f"{'label':16s} {'train':>6s} {'val':>6s} {'test':>6s}")
    for label in labels:
        print(f"{label:16s} " + " ".join(f"{counts.get((label, s), 0):6d}" for s in ("train", "val", "test")))
    for c in clips:
        if c.label != "background" and c.label != "speech":
            print(f"  {c.label:14s} {c.split:5s} {c.package}={c.version} {c.licence:24s} {c.path}")


if __name__ == "__main__":
    sys.exit(main())

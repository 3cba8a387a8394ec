"""The held-out HOME-LIKE negative pool: audio a household hears all day, from packages never used in
training, validation or threshold choice (``sources.py`` reads none of the pool-only packages, and the
test-only packages it does list are never read by ``train.py``).

What counts as evidence is distinct audio: every file is decoded, trimmed to ``max_seconds``, and an
exact duplicate of a file already taken (same decoded samples: a sound installed twice under two
names) is dropped, so the hours behind a false-event bound are hours of different sound. Nothing is
looped. No pool file is byte-identical to a training or validation file (checked for issue 12: the two
that were, a Freeciv sound in FreeCol and an Oxygen sound in the freedesktop theme, are excluded).

Categories (what the issue says fools a detector in a home), by package:
- TV-like speech: Fish Fillets' voiced dialogue (``fillets-ng-data``, GPL-2+), Asterisk's English prompts
  (test-only in sources.py) and its Spanish, Italian and Russian prompts (three more real speakers),
  KTuberling's spoken words in many languages (``ktuberling-data``, GPL-2+), Unknown Horizons' lines;
- music, electronic included: game soundtracks played in full up to 10 min a track (Naev, Planet Blupi,
  Widelands, Singularity, Drascula, Unknown Horizons, Warmux, MegaGlest, OpenClonk, HyperRogue, Ardentryst,
  FreeCol, X-Moto, Neverball, Pink Pony, Fish Fillets, Extreme Tux Racer, ASC), Asterisk's music on hold,
  LMMS' and Sonic Pi's loops and samples (synth leads, basses, beats, glitches);
- beeps, chimes, ringtones: chat and desktop notification sounds (Pidgin, Psi+, EiskaltDC++), Blinken's
  electronic tones, the freedesktop / Yaru / Deepin sound themes (phone rings, alarm clock, bells);
- animals, birdsong, ambience: Widelands' and MegaGlest's real recordings (forest birdsong, crickets, frogs,
  owls, a hawk, a rooster, chickens, farm animals, wolves howling, rain, wind), Simutrans' seagulls and
  landscapes, Tux Paint's stamp sounds (birds, farm and wild animals, vehicles, weather);
- effects: game weapons and explosions (Warmux, Naev, FreeCol, Chromium B.S.U.), work and water sounds.
Kitchen appliances, a vacuum cleaner, children playing and real TV programmes are not in any package we
found: the pool does not cover them (MODEL_CARD.md, "What the pool lacks"). HOME_POOL.md lists every
package searched, used or not and why, and the hours per package.
"""
from __future__ import annotations

import hashlib
import pickle
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
    # message-new-instant.oga is byte-identical to Oxygen's Im-Message-In.ogg, a training file
    PoolSource("sound-theme-freedesktop", "ringtones", ("/usr/share/sounds/freedesktop/",), "CC-BY-SA-3.0 / GPL-2+",
               exclude=("/message-new-instant.oga",)),
    PoolSource("yaru-theme-sound", "ringtones", ("/usr/share/sounds/Yaru/",), "CC-BY-SA-4.0"),
    PoolSource("deepin-sound-theme", "ringtones", ("/usr/share/sounds/deepin/",), "GPL-3+"),
    # the stamps' dog and fire truck are real positives (sources.RULES), their spoken descriptions speech
    PoolSource("tuxpaint-stamps-default", "animals_ambience", ("/usr/share/tuxpaint/stamps/",), "GPL-2",
               30.0, exclude=("/dogs/dog.ogg", "/emergency/firetruck.ogg", "_desc", "/symbols/")),
    # --- added for issue 12 (more hours; none of these packages is in sources.PACKAGES) ---
    # real human voices in three more languages (a female Mexican-Spanish, a male Italian, a female Russian
    # speaker: none of them the French or English voices that sources.py reads)
    *[PoolSource(f"asterisk-core-sounds-{lang}-wav", "tv_speech", (f"/usr/share/asterisk/sounds/{voice}/",),
                 lic, 30.0, exclude=("/silence/",))
      for lang, voice, lic in (("es", "es_MX_f_Allison", "CC-BY-SA-3.0"), ("it", "it_IT_m_Carlo", "CC-BY-3.0"),
                               ("ru", "ru_RU_f_IvrvoiceRU", "CC-BY-3.0"))],
    # a fourth Italian voice pair (Marco Menardi and Paola Dal Zot's prompts, CC-BY-SA-3.0)
    PoolSource("asterisk-prompt-it-menardi-wav", "tv_speech", ("/usr/share/asterisk/sounds/it_IT_f_Menardi/",),
               "CC-BY-SA-3.0", 30.0, exclude=("/silence/",)),
    # long music tracks, full length up to 600 s: orchestral, rock, ambient, electronic, chiptune-like
    PoolSource("naev-data", "music", ("/usr/share/naev/dat/snd/music/",), "GPL-3+ / CC-BY(-SA)-3.0 / PD", 600.0),
    PoolSource("naev-data", "effects", ("/usr/share/naev/dat/snd/sounds/",), "GPL-3+ / CC-BY(-SA)-3.0 / PD", 30.0),
    PoolSource("planetblupi-music-ogg", "music", ("/usr/share/planetblupi/music/",), "GPL-3+", 600.0),
    PoolSource("widelands-data", "music", ("/usr/share/games/widelands/data/music/",), "GPL-2+", 600.0),
    # Widelands' real animal and work recordings: birds, crickets, frogs, wolves howling, moose, stags, a
    # donkey, horses, oxen, sheep, pigs grunting (farm_animal), saws, smiths, mills. The two coyote clips
    # have short yips between the howls, bark-like, so they are left out (a negative must not be a positive)
    PoolSource("widelands-data", "animals_ambience", ("/usr/share/games/widelands/data/sound/",), "GPL-2+",
               30.0, exclude=("/coyote_",)),
    PoolSource("singularity-music", "music", ("/usr/share/games/singularity/music/",), "CC-BY-SA", 600.0),
    PoolSource("unknown-horizons", "music", ("/usr/share/unknown-horizons/content/audio/music/",), "GPL-2+",
               600.0),
    # building / crowd / ship sounds, and a few spoken lines (en, de, fr)
    PoolSource("unknown-horizons", "effects", ("/usr/share/unknown-horizons/content/audio/sounds/",
                                               "/usr/share/unknown-horizons/content/audio/voice/"), "GPL-2+", 30.0),
    PoolSource("warmux-data", "music", ("/usr/share/games/warmux/music/",), "GPL-2+", 600.0),
    # game weapons (the issue's false alarms) and game noises; the characters' voices (injured / death
    # cries, cartoon screams) are left out
    PoolSource("warmux-data", "effects", ("/usr/share/games/warmux/sound/",), "GPL-2+", 30.0,
               exclude=("/voices/",)),
    # MegaGlest: the tilesets' real ambiences (forest birdsong by day, crickets by night, rain, wind, a
    # rooster, chickens, a cow, an owl, a hawk, a wolf howling), the menu and faction music; the units'
    # sounds (battle cries, deaths) are left out
    PoolSource("megaglest-data", "animals_ambience", ("/usr/share/games/megaglest/tilesets/",), "CC-BY-SA-3.0",
               60.0),
    PoolSource("megaglest-data", "music", ("/usr/share/games/megaglest/data/core/menu/music/",
                                           "/usr/share/games/megaglest/techs/megapack/factions/"),
               "CC-BY-SA-3.0", 600.0, exclude=("/units/",)),
    PoolSource("megaglest-data", "effects", ("/usr/share/games/megaglest/data/core/menu/sound/",
                                             "/usr/share/games/megaglest/data/core/water_sounds/"),
               "CC-BY-SA-3.0", 30.0),
    PoolSource("openclonk-data", "music", ("/usr/share/games/openclonk/Music.ocg/",), "ISC / CC-BY", 600.0),
    PoolSource("hyperrogue-music", "music", ("/usr/share/hyperrogue/music/",), "CC-BY-SA-3.0 / GPL-2+", 600.0),
    PoolSource("asterisk-moh-opsound-wav", "music", ("/usr/share/asterisk/moh/",), "CC-BY-SA-3.0", 600.0),
    PoolSource("ardentryst", "music", ("/usr/share/games/ardentryst/Music/",), "GPL-3+", 600.0),
    # FreeCol: orchestral / folk music, national anthems, cannon and musket effects, a bell
    PoolSource("freecol", "music", ("/usr/share/games/freecol/default/resources/music/",
                                    "/usr/share/games/freecol/base/resources/sound/"), "GPL-2+", 600.0),
    # (illegal.ogg is byte-identical to Freeciv's, a training file)
    PoolSource("freecol", "effects", ("/usr/share/games/freecol/default/resources/sound/",), "GPL-2+", 30.0,
               exclude=("/event/illegal.ogg",)),
    # Sonic Pi's samples: electronic drums, basses, loops, glitches, ambient drones
    PoolSource("sonic-pi-samples", "electronic_music", ("/usr/share/sonic-pi/samples/",), "CC0-1.0 / CC-BY-SA-4.0",
               60.0),
    # Drascula's soundtrack (Drascula licence, BSD-like; the package holds one copy per language: one is read)
    PoolSource("drascula-music", "music", ("/usr/share/scummvm/drascula/audio/",), "Drascula-License", 600.0),
    PoolSource("xmoto-data", "music", ("/usr/share/games/xmoto/Textures/Musics/",), "GPL-2+", 600.0),
    PoolSource("neverball-common", "music", ("/usr/share/games/neverball/bgm/",), "GPL-2+", 600.0),
    PoolSource("neverball-common", "effects", ("/usr/share/games/neverball/snd/",), "GPL-2+", 30.0),
    PoolSource("pink-pony-data", "music", ("/usr/share/games/pink-pony/music/",), "CC-BY-SA-3.0", 600.0),
    PoolSource("berusky2-data", "music", ("/usr/share/games/berusky2/music/",), "GPL-2+", 600.0),
    # Berusky 2's effects: birds, crows, gulls, frogs, rats, cars, water, doors, explosions; three shouted
    # voice clips ("juchuu", "hopla", a chant) are left out as scream-like
    PoolSource("berusky2-data", "effects", ("/usr/share/games/berusky2/sound/sound/",), "GPL-2+", 30.0,
               exclude=("/juch", "/hopla", "/pray")),
    # soundtracks of three test-only packages of sources.py (train.py never reads them; their sound
    # effects, which hold the test positives, are not used here)
    PoolSource("wesnoth-1.16-music", "music", ("/usr/share/games/wesnoth/1.16/data/core/music/",), "GPL-2+", 600.0),
    PoolSource("supertuxkart-data", "music", ("/usr/share/games/supertuxkart/data/music/",), "GPL-3+", 600.0),
    PoolSource("freedroidrpg-data", "music", ("/usr/share/freedroidrpg/data/sound/music/",), "GPL-2+", 600.0),
    # Simutrans: seagulls, forest / tropic / arctic / desert ambience, a level crossing bell, traffic
    PoolSource("simutrans-pak64", "animals_ambience", ("/usr/share/games/simutrans/pak/sound/",), "Artistic-1.0",
               30.0),
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


def load(cache: Path | None = None) -> tuple[list[PoolClip], dict]:
    """Every distinct pool file (decoded, trimmed) and an audit: files per package, duplicates dropped,
    packages missing. ``cache``: a file that keeps the decoded pool (about 10 minutes of decoding) for
    the next run, valid while the pool's definition and the installed package versions are the same."""
    key = repr((POOL, [sources.package_version(p) for p in sorted({s.package for s in POOL})]))
    if cache is not None and cache.exists():
        with cache.open("rb") as f:
            stored = pickle.load(f)
        if stored["key"] == key:
            return [PoolClip(*c[:3], c[3].astype(np.float32) / 32767) for c in stored["clips"]], stored["audit"]
    clips, audit = _decode()
    if cache is not None:
        tmp = cache.with_name(cache.name + ".tmp")
        with tmp.open("wb") as f:
            pickle.dump({"key": key, "audit": audit, "clips": [
                (c.package, c.category, c.path, np.round(np.clip(c.audio, -1, 1) * 32767).astype(np.int16))
                for c in clips]}, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(cache)
    return clips, audit


def _decode() -> tuple[list[PoolClip], dict]:
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

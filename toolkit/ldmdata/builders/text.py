"""Caption text logic: normalisation, main-entity candidates and template edit prompts.

Pure Python and deterministic; no model and no downloaded tagger. The entity finder is a
small rule-based chunker for English captions (COCO style): it cuts a caption at function
words and verbs and keeps the noun phrases between them.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

import numpy as np

from ldmdata.errors import InputRejected, LdmdataError

# ---- normalisation --------------------------------------------------------------------------


def normalize_caption(text: str) -> str:
    """Trim, collapse whitespace and drop trailing periods; the case is kept (proper nouns
    cannot be told apart without a tagger)."""
    if not isinstance(text, str):
        raise InputRejected(f"caption is not text: {type(text).__name__}")
    text = " ".join(unicodedata.normalize("NFC", text).split())
    return re.sub(r"[\s.\u2026]+$", "", text)


def has_words(text) -> bool:
    """True for a string holding at least one letter or digit."""
    return isinstance(text, str) and re.search(r"[^\W_]", text) is not None


def _require_words(caption: str) -> str:
    text = normalize_caption(caption)
    if not re.search(r"[^\W_]", text):
        raise InputRejected("caption has no words")
    return text


# ---- entity candidates ----------------------------------------------------------------------

_DETERMINERS = frozenset("""
a an the this these those some any several many few each every all both various multiple
numerous another other its his her their my our your one two three four five six seven eight
nine ten eleven twelve dozen dozens hundreds no
""".split())

_PREPOSITIONS = frozenset("""
about above across after against along alongside amid amidst among around as at atop before
behind below beneath beside besides between beyond by down during except for from in inside
into like near next of off on onto out outside over past per through throughout to toward
towards under underneath until up upon via with within without
""".split())

_CONJUNCTIONS = frozenset("""
and or but nor yet so while whilst than because although though if then that which who whom
whose where when &
""".split())

_PRONOUNS_AND_ADVERBS = frozenset("""
it they them he she him we us i me you there here what itself themselves himself herself
not very really just only also too together away almost nearly quite rather still well
upside ready currently even it's there's that's he's she's what's here's they're
""".split())

_AUXILIARIES = frozenset("""
is are was were be been being am has have had having does do did can could will would may
might must shall should 's
""".split())

_VERBS = frozenset("""
sit sits sat stand stands stood hold holds held lie lies lay lays laid rest rests wait waits
look looks eat eats ate eaten ride rides rode ridden fly flies flew flown play plays walk walks
run runs ran carry carries wear wears wore worn contain contains cross crosses drive drives
drove hang hangs hung throw throws threw thrown catch catches caught take takes took taken get
gets got go goes went gone make makes made pose poses graze grazes jump jumps lean leans reach
reaches pull pulls push pushes kick kicks hit hits smile smiles talk talks read reads use uses
prepare prepares cut cuts feature features displays appear appears seem seems sleep sleeps
slept swim swims swam watch watches show shows shown sell sells sold stare stares surround
surrounds line lines fill fills cover covers rise rises climb climbs enjoy enjoys try tries
see sees seen belong belongs await awaits head heads stuck filled covered topped parked dressed
""".split())

# -ing / -ed words that name things, not actions.
_NOMINAL_ING = frozenset("""
building ceiling evening morning clothing icing frosting stuffing pudding awning railing
siding bedding dining living parking wedding shopping ironing washing swimming cutting sewing
dressing filling topping seasoning landing lightning sibling duckling sapling dumpling earring
herring lining flooring roofing housing boxing bowling training ping
""".split())
_NOMINAL_ED = frozenset("hundred naked sacred wicked rugged crooked beloved kindred".split())

_ADJECTIVES = frozenset("""
white black red blue green yellow orange pink purple brown gray grey silver gold golden beige
big small large little tiny huge giant tall short long wide narrow high low old new young
empty full open closed clean dirty wet dry happy sad busy quiet dark bright hot cold warm cool
fresh different same close nice beautiful pretty cute good great shiny colorful colourful
wooden single double entire whole own alone lone
""".split())

# "a group of", "in front of", "a photo of": the entity is what comes after "of".
_BEFORE_OF = frozenset("""
couple bunch group groups pair lot lots number variety assortment collection kind kinds type
types sort set herd flock crowd team pile stack row rows line array handful piece pieces slice
front top middle side edge back bottom center centre rest end part half view image picture
pictures photo photos photograph shot closeup close-up
""".split())

_LY_NOUNS = frozenset("""
family fly butterfly dragonfly firefly belly jelly lily bully ally rally tally dolly holly
gully assembly supply reply
""".split())

_TOKEN = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*|[^\w\s]")
_VOWELS = frozenset("aeiouy")


def _is_ing_participle(word: str) -> bool:
    stem = word[:-3]
    return (word.endswith("ing") and len(stem) >= 2 and bool(_VOWELS & set(stem))
            and word not in _NOMINAL_ING)


def _is_ed_participle(word: str) -> bool:
    return (word.endswith("ed") and len(word) >= 5 and word not in _NOMINAL_ED
            and not word.endswith(("eed", "bed", "sled", "shed")))


def _is_boundary(word: str) -> bool:
    return (not word[0].isalnum() or word in _PREPOSITIONS or word in _CONJUNCTIONS
            or word in _PRONOUNS_AND_ADVERBS or word in _AUXILIARIES or word in _VERBS
            or (word.endswith("ly") and word not in _LY_NOUNS))


def _content(word: str | None) -> bool:
    return word is not None and not _is_boundary(word) and word not in _DETERMINERS


def _chunks(words: list[str]) -> list[tuple[list[str], bool, str | None]]:
    """Runs of words between boundary words, as (words without leading determiners and
    numbers, whether a determiner was stripped, the word right after the run)."""
    runs: list[tuple[list[str], str | None]] = []
    current: list[str] = []
    for i, word in enumerate(words):
        prev = words[i - 1] if i else None
        nxt = words[i + 1] if i + 1 < len(words) else None
        boundary = _is_boundary(word)
        if word in ("and", "or") and prev in _ADJECTIVES and nxt in _ADJECTIVES:
            boundary = False  # "a black and white photo"
        elif not boundary and (_is_ing_participle(word) or _is_ed_participle(word)):
            # A participle inside a noun phrase ("a sleeping cat", "green striped
            # background") is a modifier; after a noun ("dogs playing") it is a verb.
            boundary = not (prev in _DETERMINERS or (prev in _ADJECTIVES and _content(nxt)))
        if boundary:
            if current:
                runs.append((current, word))
            current = []
        else:
            current.append(word)
    if current:
        runs.append((current, None))
    chunks = []
    for run, nxt in runs:
        start, end = 0, len(run)
        while start < end and (run[start] in _DETERMINERS or run[start].isdigit()):
            start += 1
        while end > start and run[end - 1].isdigit():  # "bus number 5"
            end -= 1
        if start < end:
            chunks.append((run[start:end], start > 0, nxt))
    return chunks


def entity_candidates(caption: str) -> list[str]:
    """Candidate main-entity noun phrases of an English caption, lower-case, subject first.

    >>> entity_candidates("two dogs playing with a frisbee on the beach")
    ['dogs', 'frisbee', 'beach']

    Never empty: with no noun phrase found, the caption's last word. A caption without any
    word raises ``InputRejected``.
    """
    text = re.sub(r"\bclose up\b", "close-up", _require_words(caption).lower())
    words = [t.replace("\u2019", "'") for t in _TOKEN.findall(text)]
    candidates: list[str] = []
    for chunk, had_det, nxt in _chunks(words):
        head = chunk[-1]
        if nxt == "of" and head in _BEFORE_OF:
            continue
        if head in _ADJECTIVES and not (had_det and len(chunk) == 1):  # "an orange" is a noun
            continue
        candidates.append(" ".join(chunk))
    candidates = list(dict.fromkeys(candidates))
    if not candidates:
        candidates = [next(w for w in reversed(words) if w[0].isalnum())]
    return candidates


# ---- template prompts -----------------------------------------------------------------------

# Each category: (words in a caption that make it redundant, phrases). "Lead" phrases follow
# the caption directly ("... with a light rain beginning to fall"); "tail" phrases follow a
# comma (", in the style of ..."). A prompt adds one phrase, or two from different categories.
_LEAD: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "place": (frozenset(), (
        "in the middle of a busy city street",
        "surrounded by tall pine trees",
        "next to a calm mountain lake",
        "in front of an old brick wall",
        "on a quiet country road",
        "surrounded by blooming wildflowers",
        "beside a rushing river",
        "in a crowded open-air market",
        "in front of a snowy mountain range",
        "on a wide sandy beach",
        "inside a cozy wooden cabin",
        "in the middle of a vast desert",
        "surrounded by a lush tropical jungle",
        "near a busy train station",
        "inside an abandoned warehouse",
        "on the edge of a steep cliff",
        "in a field of sunflowers",
        "in a futuristic city",
        "in an enchanted fairy-tale forest",
        "on the surface of an alien planet",
    )),
    "objects": (frozenset(), (
        "with a red balloon floating nearby",
        "with a small dog watching from a distance",
        "with a flock of birds flying overhead",
        "with a hot air balloon drifting in the sky",
        "with colorful graffiti in the background",
        "with a vintage car parked nearby",
        "with butterflies fluttering around",
        "with a crowd of people in the background",
        "with string lights hanging above",
        "with a steaming cup of coffee nearby",
        "with fallen leaves scattered around",
        "with a kite flying high above",
        "with a cat sitting close by",
        "with a stack of old books nearby",
        "with a bicycle leaning against a wall",
        "with flowers in the foreground",
        "with a lighthouse in the distance",
    )),
    "weather": (
        frozenset("""rain rainy raining drizzle fog foggy mist misty snow snowy snowing
        snowstorm storm stormy thunderstorm sunny cloudy clouds wind windy hail frost frosty
        winter summer spring autumn""".split()),
        (
            "with a light rain beginning to fall",
            "during a heavy snowstorm",
            "in thick fog",
            "under a clear sky",
            "under dark storm clouds",
            "with snowflakes drifting down",
            "during a summer thunderstorm",
            "in a soft drizzle",
            "in strong gusting wind",
            "with puddles reflecting the sky",
            "under a rainbow after the rain",
            "in a swirling sandstorm",
            "with frost covering every surface",
            "as hail bounces off the ground",
            "in the middle of winter",
            "on a warm spring day",
            "in late autumn",
            "in the heat of summer",
            "surrounded by falling autumn leaves",
            "with cherry blossoms in full bloom",
            "during the Christmas holidays",
            "with fresh snow on the ground",
        ),
    ),
    "light": (
        frozenset("""night nighttime evening morning dusk dawn sunset sunrise noon midnight
        afternoon twilight dark daytime moonlight""".split()),
        (
            "at dawn",
            "at sunrise",
            "at sunset",
            "at dusk",
            "at midnight",
            "at noon",
            "in the early morning",
            "late in the evening",
            "under a full moon",
            "under a starry night sky",
            "in the golden hour",
            "during the blue hour",
            "at twilight",
            "bathed in warm golden light",
            "lit by flickering candles",
            "lit by glowing neon signs",
            "in dramatic side lighting",
            "with long shadows stretching across the ground",
            "under the glow of street lamps",
            "in soft diffused light",
            "backlit by the setting sun",
            "under harsh fluorescent lights",
            "illuminated by fireworks overhead",
            "in the glow of a campfire",
        ),
    ),
    "mood": (frozenset(), (
        "in a dreamlike atmosphere",
        "as if frozen in time",
        "in a peaceful and quiet moment",
        "on a festive occasion",
        "in a post-apocalyptic world",
        "in a nostalgic mood",
        "in a mysterious atmosphere",
        "in a joyful celebration",
    )),
}

_TAIL: tuple[str, ...] = (
    "in the style of Vincent van Gogh",
    "in the style of Claude Monet",
    "in the style of Hokusai",
    "in the style of Salvador Dali",
    "in the style of a watercolor painting",
    "in the style of an oil painting",
    "in the style of a Japanese woodblock print",
    "in the style of a comic book",
    "in the style of a pencil sketch",
    "in the style of pixel art",
    "in the style of a vintage photograph",
    "in the style of a Renaissance painting",
    "in the style of pop art",
    "in the style of an impressionist painting",
    "in the style of a children's book illustration",
    "in the style of Art Deco",
    "in the style of a stained glass window",
    "in the style of a mosaic",
    "in cyberpunk style",
    "in steampunk style",
    "in low-poly style",
    "as a charcoal drawing",
    "as a 3D render",
    "as a black and white photograph",
    "as a long-exposure photograph",
    "as a cinematic film still",
    "as a faded polaroid photo",
    "photographed with a fisheye lens",
    "seen from a bird's-eye view",
    "captured with a shallow depth of field",
    "shot on 35mm film",
    "seen through a rain-streaked window",
    "as a tilt-shift photograph",
    "viewed from a low angle",
)


def _phrase_bank() -> list[tuple[str, str]]:
    """Every (category, phrase) pair: the bank that tests check for size and uniqueness."""
    bank = [(cat, phrase) for cat, (_, phrases) in _LEAD.items() for phrase in phrases]
    return bank + [("tail", phrase) for phrase in _TAIL]


def template_prompts(caption: str, k: int, rng: np.random.Generator) -> list[str]:
    """``k`` distinct edit prompts: the normalised caption plus added context, then ".".

    Single phrases come first (in an order drawn from ``rng``), then two-phrase combinations.
    Categories the caption already talks about (its weather, season or time of day) are left
    out. Deterministic for a given ``rng`` state.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise LdmdataError(f"number of prompts must be a non-negative integer, got {k!r}")
    if not isinstance(rng, np.random.Generator):
        raise LdmdataError("template_prompts needs a numpy.random.Generator")
    base = _require_words(caption).rstrip(" ,;:!?")
    words = set(_TOKEN.findall(base.lower()))
    leads = [(cat, phrases) for cat, (clash, phrases) in _LEAD.items() if not clash & words]
    singles = [f"{base} {p}." for _, phrases in leads for p in phrases]
    singles += [f"{base}, {p}." for p in _TAIL]
    order = rng.permutation(len(singles))
    prompts = [singles[i] for i in order[:k]]
    if k > len(singles):
        pairs = [
            f"{base} {p} {q}."
            for (_, first), (_, second) in itertools.combinations(leads, 2)
            for p in first
            for q in second
        ]
        pairs += [f"{base} {p}, {q}." for _, phrases in leads for p in phrases for q in _TAIL]
        if k > len(singles) + len(pairs):
            raise LdmdataError(
                f"asked for {k} prompts; the phrase bank gives at most "
                f"{len(singles) + len(pairs)} for this caption"
            )
        order = rng.permutation(len(pairs))
        prompts += [pairs[i] for i in order[: k - len(singles)]]
    return prompts

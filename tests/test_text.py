"""Caption text logic: normalisation, entity candidates, template prompts."""

import numpy as np
import pytest

from ldmdata.builders.text import (
    _phrase_bank,
    entity_candidates,
    normalize_caption,
    template_prompts,
)
from ldmdata.errors import InputRejected, LdmdataError

SEED_CAPTION = "A lone motorcycle parked in parking space at night."


@pytest.mark.parametrize(("raw", "expected"), [
    ("A lone motorcycle parked in parking space at night.", "A lone motorcycle parked in "
     "parking space at night"),
    ("  a   dog\trunning\non grass .  ", "a dog running on grass"),
    ("Two cats...", "Two cats"),
    ("Paris at dusk\u2026", "Paris at dusk"),
    ("What a view!", "What a view!"),
    ("Cafe\u0301 on the corner", "Caf\u00e9 on the corner"),  # NFC
    ("\u00a0non-breaking\u00a0space\u00a0", "non-breaking space"),
    ("", ""),
    ("...", ""),
])
def test_normalize_caption(raw, expected):
    assert normalize_caption(raw) == expected


def test_normalize_rejects_non_text():
    with pytest.raises(InputRejected):
        normalize_caption(None)


# COCO-style captions and the candidates we want, subject first.
CASES = [
    (SEED_CAPTION, ["lone motorcycle", "parking space", "night"]),
    ("two dogs playing with a frisbee on the beach", ["dogs", "frisbee", "beach"]),
    ("a red circle and a small blue square on a green striped background",
     ["red circle", "small blue square", "green striped background"]),
    ("A man riding a wave on top of a surfboard.", ["man", "wave", "surfboard"]),
    ("A kitchen with stainless steel appliances and granite counter tops.",
     ["kitchen", "stainless steel appliances", "granite counter tops"]),
    ("Two giraffes standing next to each other in a field.", ["giraffes", "field"]),
    ("A bathroom that has a toilet and a sink.", ["bathroom", "toilet", "sink"]),
    ("A group of people sitting around a table with laptops.", ["people", "table", "laptops"]),
    ("A plate topped with broccoli and cheese.", ["plate", "broccoli", "cheese"]),
    ("An old man in a suit and tie.", ["old man", "suit", "tie"]),
    ("A black and white photo of a street sign.", ["street sign"]),
    ("A cat is sleeping on a bed.", ["cat", "bed"]),
    ("People are walking down the sidewalk in the rain.", ["people", "sidewalk", "rain"]),
    ("A woman holding a pink umbrella.", ["woman", "pink umbrella"]),
    ("A stuffed teddy bear sitting on a bed next to a pillow.",
     ["stuffed teddy bear", "bed", "pillow"]),
    ("A double decker bus parked next to a building.", ["double decker bus", "building"]),
    ("A close up of a plate of food with a fork.", ["plate", "food", "fork"]),
    ("A herd of elephants walking across a dry grass field.", ["elephants", "dry grass field"]),
    ("There is a clock on the side of the building.", ["clock", "building"]),
    ("A young boy swinging a baseball bat at a ball.", ["young boy", "baseball bat", "ball"]),
    ("A living room filled with furniture and a flat screen tv.",
     ["living room", "furniture", "flat screen tv"]),
    ("A sleeping cat curled up on a couch.", ["sleeping cat", "couch"]),
    ("A man and his dog on a sled in the snow.", ["man", "dog", "sled", "snow"]),
    ("Several zebras grazing in the tall grass.", ["zebras", "tall grass"]),
    ("A red fire hydrant sitting on the side of a road.", ["red fire hydrant", "road"]),
    ("An airplane flying over a city at sunset.", ["airplane", "city", "sunset"]),
    ("A little girl eating a slice of pizza.", ["little girl", "pizza"]),
    ("A well dressed man standing in front of a brick wall.", ["man", "brick wall"]),
    ("A man\u2019s hand holding a smartphone.", ["man's hand", "smartphone"]),
    ("A vase of flowers on a dining table.", ["vase", "flowers", "dining table"]),
    ("The ceiling of the church is painted with a fresco.", ["ceiling", "church", "fresco"]),
    ("A bowl filled with oranges and apples.", ["bowl", "oranges", "apples"]),
    ("An orange.", ["orange"]),
]


@pytest.mark.parametrize(("caption", "expected"), CASES)
def test_entity_candidates(caption, expected):
    assert entity_candidates(caption) == expected


def test_entity_candidates_deduplicate_and_ignore_case():
    assert entity_candidates("A Dog chasing a dog, and THE DOG") == ["dog"]


@pytest.mark.parametrize("caption", [
    "Running quickly.",  # only a verb and an adverb
    "is",
    "very big",
    "42",
])
def test_entity_candidates_fall_back_to_last_word(caption):
    words = normalize_caption(caption).lower().split()
    assert entity_candidates(caption) == [words[-1]]


@pytest.mark.parametrize("caption", ["", "   ", "...", "?!", "\u2014 \u2026"])
def test_entity_candidates_reject_captions_without_words(caption):
    with pytest.raises(InputRejected):
        entity_candidates(caption)


def test_entity_candidates_unicode_and_long():
    assert entity_candidates("Un caf\u00e9 cr\u00e8me on a zinc bar in Montr\u00e9al") == [
        "un caf\u00e9 cr\u00e8me", "zinc bar", "montr\u00e9al"]
    assert entity_candidates("\u4e00\u53ea\u732b") == ["\u4e00\u53ea\u732b"]
    long = " and ".join(f"a cat number {i}" for i in range(2000))
    found = entity_candidates(long)
    assert found[0] == "cat number" and len(found) == 1


# ---- template prompts -----------------------------------------------------------------------


def test_phrase_bank_is_rich_and_unique():
    bank = _phrase_bank()
    phrases = [p for _, p in bank]
    assert len(phrases) >= 80
    assert len(set(phrases)) == len(phrases)
    starts = {p.split()[0] for p in phrases}
    assert {"with", "during", "under", "surrounded", "in", "at"} <= starts
    assert any(p.startswith("in the style of") for p in phrases)
    assert all(p == p.strip() and not p.endswith(".") for p in phrases)


def test_template_prompts_keep_the_caption_and_add_context():
    prompts = template_prompts(SEED_CAPTION, 10, np.random.default_rng(0))
    assert len(prompts) == 10 and len(set(prompts)) == 10
    base = normalize_caption(SEED_CAPTION)
    for prompt in prompts:
        assert prompt.startswith(base)
        assert prompt.endswith(".") and not prompt.endswith("..")
        assert len(prompt) > len(base) + 5
        assert "  " not in prompt
    # The caption already says "night": no time-of-day context is added.
    assert not any(w in p for p in prompts for w in ("at dawn", "at noon", "at sunset"))


def test_template_prompts_style_phrases_follow_a_comma():
    prompts = template_prompts("a dog", 200, np.random.default_rng(1))
    styled = [p for p in prompts if "in the style of" in p]
    assert styled and all(", in the style of" in p for p in styled)


@pytest.mark.parametrize("k", [0, 1, 5, 124, 125, 300, 600])
def test_template_prompts_any_k_distinct(k):
    prompts = template_prompts("A cat on a sofa", k, np.random.default_rng(k))
    assert len(prompts) == k
    assert len(set(prompts)) == k


def test_template_prompts_deterministic():
    a = template_prompts(SEED_CAPTION, 300, np.random.default_rng(7))
    b = template_prompts(SEED_CAPTION, 300, np.random.default_rng(7))
    c = template_prompts(SEED_CAPTION, 300, np.random.default_rng(8))
    assert a == b
    assert a != c
    # A prefix of a longer draw, for the single phrases drawn first.
    assert template_prompts(SEED_CAPTION, 5, np.random.default_rng(7)) == a[:5]


def test_template_prompts_odd_captions():
    assert template_prompts("  What a view!  ", 1, np.random.default_rng(0))[0].startswith(
        "What a view ")
    unicode = template_prompts("Un caf\u00e9 \u00e0 Montr\u00e9al", 3, np.random.default_rng(0))
    assert all(p.startswith("Un caf\u00e9 \u00e0 Montr\u00e9al") for p in unicode)
    long = "a dog " * 500
    assert len(template_prompts(long, 3, np.random.default_rng(0))) == 3


def test_template_prompts_bad_inputs():
    rng = np.random.default_rng(0)
    for caption in ("", "...", "!?"):
        with pytest.raises(InputRejected):
            template_prompts(caption, 3, rng)
    for k in (-1, 2.5, True, "3"):
        with pytest.raises(LdmdataError):
            template_prompts("a dog", k, rng)
    with pytest.raises(LdmdataError, match="at most"):
        template_prompts("a dog", 10**6, rng)
    with pytest.raises(LdmdataError, match="Generator"):
        template_prompts("a dog", 3, 0)

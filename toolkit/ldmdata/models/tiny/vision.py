"""Tiny random-init vision/text roles: captioner, detector, segmenters, CLIP, LLM.

Each builder creates the real architecture class from a small config (the caller seeds torch),
learns its tokenizer's vocabulary from a built-in corpus of caption words (no download),
and saves with ``save_pretrained(..., safe_serialization=True)`` so that ``from_pretrained``
reads it offline. The outputs of these models are noise; they exist to run code paths.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import pre_tokenizers
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessor,
    BlipProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    CLIPTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Tokenizer,
    Owlv2Config,
    Owlv2ForObjectDetection,
    Owlv2ImageProcessor,
    Owlv2Processor,
    SamConfig,
    SamImageProcessor,
    SamModel,
    SamProcessor,
)

# Caption words: colours, shapes, COCO objects, scenes, verbs, prepositions and function words.
_WORDS = """
a an the this that some two three four many one of in on at by with under over near behind
above below beside next to front inside outside around through across along into onto from
and or while is are was sitting standing lying walking running flying parked holding eating
riding playing looking waiting hanging floating covered filled surrounded made small large big
little tall long short old young new red orange yellow green blue purple pink brown black white
gray grey gold silver dark bright light wooden metal glass plastic stone round square triangle
circle rectangle star striped spotted shiny soft person man woman child boy girl people group
bicycle car motorcycle airplane bus train truck boat traffic light fire hydrant stop sign
parking meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella
handbag tie suitcase frisbee skis snowboard sports ball kite baseball bat glove skateboard
surfboard tennis racket bottle wine cup fork knife spoon bowl banana apple sandwich broccoli
carrot hot pizza donut cake chair couch potted plant bed dining table toilet tv laptop mouse
remote keyboard cell phone microwave oven toaster sink refrigerator book clock vase scissors
teddy hair drier toothbrush street road city park beach sea ocean lake river mountain hill
field grass tree trees forest sky cloud clouds snow rain sun sunset night day morning evening
kitchen room living bedroom bathroom office window door wall floor building house shop market
station airport farm garden yard sidewalk crowd shelf counter desk plate food water wave waves
sand rock rocks flowers flower leaves background foreground scene picture photo image view
"""
_SENTENCES = (
    "a red car parked on the street next to a tall building.",
    "two dogs playing with a frisbee in a green park.",
    "a man riding a bicycle along the beach at sunset.",
    "a cat sitting on a wooden chair in the kitchen.",
    "a plate of food with broccoli and carrots on a table.",
    "a group of people standing around a large white bus.",
    "an airplane flying over the city under a blue sky.",
    "a small boat floating on the lake near the mountains.",
    "a giraffe and a zebra standing in a grassy field.",
    "a pizza with cheese on a dining table in a bright room.",
    "a yellow square and a blue circle on a gray background.",
    "a black and white photo of a clock on a brick wall, 3 o'clock!",
)


def _corpus() -> list[str]:
    words = _WORDS.split()
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    return lines + list(_SENTENCES)


def _learn_merges(suffix: str, pre_tokenizer, normalizer, n_merges: int) -> list[tuple[str, str]]:
    """BPE merges learned on the built-in corpus: most frequent pair first, ties by name.

    Written out (not ``tokenizers``' trainer) because the trainer breaks ties in hash order, and
    two builds must give byte-identical files.
    """
    counts: Counter[tuple[str, ...]] = Counter()
    for line in _corpus():
        text = normalizer.normalize_str(line) if normalizer is not None else line
        for piece, _ in pre_tokenizer.pre_tokenize_str(text):
            symbols = list(piece)
            symbols[-1] += suffix
            counts[tuple(symbols)] += 1
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in counts.items():
            for pair in zip(word, word[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if pairs[best] < 2:
            break
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, count in counts.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        counts = merged
    return merges


def _bpe_vocab(merges: list[tuple[str, str]], suffix: str, specials: list[str]) -> dict[str, int]:
    """Byte alphabet (and its end-of-word forms), then one token per merge, then specials."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + ([c + suffix for c in alphabet] if suffix else [])
    tokens += [a + b for a, b in merges]
    vocab: dict[str, int] = {}
    for token in tokens + specials:
        vocab.setdefault(token, len(vocab))
    return vocab


def tiny_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A CLIPTokenizer with a small BPE vocabulary learned from caption words."""
    template = CLIPTokenizer().backend_tokenizer
    merges = _learn_merges("</w>", template.pre_tokenizer, template.normalizer, 400)
    vocab = _bpe_vocab(merges, "</w>", ["<|startoftext|>", "<|endoftext|>"])
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def tiny_gpt2_tokenizer() -> GPT2Tokenizer:
    """A GPT2Tokenizer with a small byte-level BPE vocabulary learned from caption words."""
    merges = _learn_merges("", pre_tokenizers.ByteLevel(add_prefix_space=False), None, 400)
    vocab = _bpe_vocab(merges, "", ["<|endoftext|>"])
    return GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        pad_token="<|endoftext|>",
        model_max_length=256,
    )


def tiny_bert_tokenizer() -> BertTokenizer:
    """A BertTokenizer (BLIP style, with ``[DEC]`` as bos) whose vocabulary is the corpus words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"]
    chars = sorted(set("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;\"()"))
    words = sorted(set(" ".join(_corpus()).lower().replace(".", " ").replace(",", " ").split()))
    tokens = specials + chars + [f"##{c}" for c in chars] + words
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return BertTokenizer(vocab=vocab, bos_token="[DEC]", model_max_length=64)


def build_captioner(out: Path) -> None:
    """BLIP captioner (architecture of Salesforce/blip-image-captioning-large), 32 px input."""
    tokenizer = tiny_bert_tokenizer()
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 64,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    config = BlipConfig(
        text_config=text, vision_config=vision, projection_dim=32, image_text_hidden_size=32
    )
    model = BlipForConditionalGeneration(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    image_processor = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor, tokenizer).save_pretrained(out)


def build_detector(out: Path) -> None:
    """OWLv2 open-vocabulary detector (google/owlv2-base-patch16-ensemble's architecture), 64 px."""
    tokenizer = tiny_clip_tokenizer(model_max_length=16)
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 16,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 64,
        "patch_size": 8,
    }
    # The top-level config has no initializer_range, so the heads would be drawn with std 1.0
    # and saturate the box sigmoid; 0.02 (the library default) keeps the boxes sensible.
    config = Owlv2Config(
        text_config=text, vision_config=vision, projection_dim=32, initializer_range=0.02
    )
    model = Owlv2ForObjectDetection(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    image_processor = Owlv2ImageProcessor(size={"height": 64, "width": 64})
    Owlv2Processor(image_processor, tokenizer).save_pretrained(out)


def build_segmenter(out: Path) -> None:
    """transformers SamModel (facebook/sam-vit-huge's architecture), 64 px input."""
    vision = {
        "hidden_size": 32,
        "output_channels": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 64,
        "patch_size": 8,
        "window_size": 4,
        "global_attn_indexes": [1],
        "num_pos_feats": 16,
        "mlp_dim": 64,
    }
    prompt = {"hidden_size": 32, "image_size": 64, "patch_size": 8, "mask_input_channels": 4}
    decoder = {
        "hidden_size": 32,
        "mlp_dim": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "iou_head_hidden_dim": 32,
    }
    config = SamConfig(
        vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder
    )
    model = SamModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    image_processor = SamImageProcessor(
        size={"longest_edge": 64},
        pad_size={"height": 64, "width": 64},
        mask_size={"longest_edge": 16},
        mask_pad_size={"height": 16, "width": 16},
    )
    SamProcessor(image_processor).save_pretrained(out)


# Dimensions of the tiny official SAM; ldmdata.models.segmenter.build_official_sam reads them.
OFFICIAL_TINY_CONFIG = {
    "format": "segment-anything",
    "img_size": 64,
    "patch_size": 8,
    "encoder_embed_dim": 32,
    "encoder_depth": 2,
    "encoder_num_heads": 2,
    "encoder_global_attn_indexes": [1],
    "window_size": 4,
    "mlp_ratio": 2.0,
    "prompt_embed_dim": 32,
    "mask_in_chans": 4,
    "decoder_depth": 2,
    "decoder_mlp_dim": 64,
    "decoder_num_heads": 2,
    "iou_head_hidden_dim": 32,
}


def build_segmenter_official(out: Path) -> None:
    """A tiny SAM from the official segment-anything modules: model.safetensors + config.json."""
    from ldmdata.models.segmenter import build_official_sam

    model = build_official_sam(OFFICIAL_TINY_CONFIG)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(OFFICIAL_TINY_CONFIG, indent=2, sort_keys=True))


def build_clip(out: Path) -> None:
    """CLIP scorer (openai/clip-vit-base-patch16's architecture), 32 px, 77 text positions."""
    tokenizer = tiny_clip_tokenizer(model_max_length=77)
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=32)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    # A random CLIP's image and text embeddings each cluster around one direction, so nearly every
    # image-text cosine has the same sign. Orient the text projection so that sign is positive:
    # otherwise every tiny CLIP score is clamped to 0 and prompt rankings are all ties.
    with torch.no_grad():
        probe = torch.linspace(-1.0, 1.0, 3 * 32 * 32).reshape(1, 3, 32, 32)
        image = model.get_image_features(pixel_values=probe).pooler_output
        tokens = tokenizer(list(_SENTENCES), padding=True, return_tensors="pt")
        text = model.get_text_features(**tokens).pooler_output
        cosine = torch.nn.functional.cosine_similarity(image, text).mean()
        if cosine < 0:
            model.text_projection.weight.neg_()
    model.save_pretrained(out, safe_serialization=True)
    CLIPProcessor(image_processor, tokenizer).save_pretrained(out)


def build_llm(out: Path) -> None:
    """A tiny GPT-2 causal LM for the ``llm`` prompt writer; 256 positions hold the instruction
    and two copies of a ~30-word caption."""
    tokenizer = tiny_gpt2_tokenizer()
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=256,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)

"""Edit-prompt writers: ``k`` candidate prompts per caption, deterministic given the seeds.

``template`` fills caption-aware templates (:func:`ldmdata.builders.text.template_prompts`); ``llm``
continues the caption with a causal language model, as the study's chat LLM did ("keep the
caption's subject and add context").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
)

from ldmdata.builders.text import template_prompts
from ldmdata.errors import LdmdataError
from ldmdata.models.loading import load_pretrained
from ldmdata.models.refs import ModelRef

KINDS = ("template", "llm")

INSTRUCTION = (
    "Extend the image caption with more context. Keep its subject.\n"
    "Caption: {caption}\n"
    "Extended caption: {stem}"
)


def _check(captions: Sequence[str], k: int, seeds: Sequence[int]) -> None:
    if len(captions) != len(seeds):
        raise ValueError(f"got {len(captions)} captions but {len(seeds)} seeds")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


class TemplatePromptWriter:
    """Caption-aware templates; caption ``i`` draws from ``numpy.random.default_rng(seeds[i])``."""

    def write(self, captions: list[str], k: int, seeds: list[int]) -> list[list[str]]:
        _check(captions, k, seeds)
        return [
            template_prompts(caption, k, np.random.default_rng(seed))
            for caption, seed in zip(captions, seeds, strict=True)
        ]


class _SeededSampling(LogitsProcessor):
    """Samples each row's next token with its caption's own ``torch.Generator`` (top-k,
    temperature) and leaves only that token possible, so greedy decoding keeps it.

    ``generate(do_sample=True)`` draws from the global RNG for the whole batch; this keeps each
    caption's prompts a function of its seed alone.
    """

    def __init__(self, generators: list[torch.Generator], k: int, top_k: int, temperature: float):
        self.generators = generators
        self.k = k
        self.top_k = top_k
        self.temperature = temperature

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.float().cpu() / self.temperature
        top = min(self.top_k, logits.shape[-1])
        kth = torch.topk(logits, top, dim=-1).values[:, -1:]
        probs = torch.softmax(logits.masked_fill(logits < kth, float("-inf")), dim=-1)
        picks = torch.cat(
            [
                torch.multinomial(probs[g * self.k : (g + 1) * self.k], 1, generator=generator)
                for g, generator in enumerate(self.generators)
            ]
        ).to(scores.device)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, picks, 0.0)


def _stem(caption: str) -> str:
    """The caption without its final punctuation, for the model to continue."""
    return " ".join(caption.split()).rstrip(" .!?;,")


def _one_line(text: str) -> str:
    """The first line of ``text`` without control or undecodable characters."""
    first = text.split("\n")[0]
    return "".join(ch if ch.isprintable() and ch != "\ufffd" else " " for ch in first)


class LlmPromptWriter:
    """A transformers causal LM continues each caption ``k`` times, all captions in one batch."""

    def __init__(
        self,
        ref: ModelRef,
        device: str = "cpu",
        max_new_tokens: int = 24,
        top_k: int = 50,
        temperature: float = 1.0,
    ):
        self.ref = ref
        self.device = torch.device(device)
        self.max_new_tokens = max_new_tokens
        self.top_k = top_k
        self.temperature = temperature
        self.tokenizer = load_pretrained(AutoTokenizer, ref, weights=False)
        self.model = load_pretrained(AutoModelForCausalLM, ref).to(self.device).eval()
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.tokenizer.truncation_side = "left"
        context = getattr(self.model.config, "max_position_embeddings", None)
        context = context or self.tokenizer.model_max_length
        self.max_prompt_tokens = max(1, context - max_new_tokens)

    @torch.inference_mode()
    def write(self, captions: list[str], k: int, seeds: list[int]) -> list[list[str]]:
        """``k`` prompts per caption: the caption continued (one line), or the caption itself
        where the continuation comes out empty."""
        _check(captions, k, seeds)
        if not captions:
            return []
        stems = [_stem(caption) for caption in captions]
        texts = [
            INSTRUCTION.format(caption=caption, stem=stem)
            for caption, stem in zip(captions, stems, strict=True)
            for _ in range(k)
        ]
        inputs = self.tokenizer(
            texts,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_prompt_tokens,
        ).to(self.device)
        generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        sampler = _SeededSampling(generators, k, self.top_k, self.temperature)
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        tokens = self.model.generate(
            **inputs, generation_config=config, logits_processor=LogitsProcessorList([sampler])
        )
        new = tokens[:, inputs["input_ids"].shape[1] :]
        continuations = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        out: list[list[str]] = []
        for i, caption in enumerate(captions):
            prompts = []
            for continuation in continuations[i * k : (i + 1) * k]:
                line = _one_line(continuation)
                prompts.append(" ".join((stems[i] + line).split()) if line.strip() else caption)
            out.append(prompts)
        return out


def make_prompt_writer(
    kind: str, ref: ModelRef | None = None, device: str = "cpu"
) -> TemplatePromptWriter | LlmPromptWriter:
    """The prompt writer for ``kind`` ("template" or "llm"; "llm" needs the ``llm`` model ref)."""
    if kind == "template":
        return TemplatePromptWriter()
    if kind == "llm":
        if ref is None:
            raise LdmdataError("the llm prompt writer needs a model: set models.llm in params")
        return LlmPromptWriter(ref, device=device)
    raise LdmdataError(f"unknown prompt writer {kind!r}; choose one of: {', '.join(KINDS)}")

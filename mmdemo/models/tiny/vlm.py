"""Tiny and real-size random-weight VLMs: SmolVLM (Idefics3) and Qwen2-VL.

The tiny builds are the real architectures with small widths; the ``*_256m``/``*_2b`` configs
reproduce the published model shapes for benchmarks (random weights, never saved).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdemo.models.tiny.tokenizer import hf_tokenizer

# The chat template SmolVLM-Instruct ships with (Idefics3 processors).
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# The chat template of Qwen2-VL-Instruct (images and text parts; videos left out).
QWEN2VL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

IDEFICS3_SPECIALS = (
    "<fake_token_around_image>",
    "<image>",
    "<end_of_utterance>",
    "<global-img>",
    *(f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)),
)
QWEN2VL_SPECIALS = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")


def smolvlm_parts(real_size: bool = False) -> tuple[Any, Any]:
    """(config, processor) of an Idefics3 VLM: tiny, or shaped like SmolVLM-256M."""
    from transformers import Idefics3Config, Idefics3ImageProcessor, Idefics3Processor

    tok = hf_tokenizer(IDEFICS3_SPECIALS, SMOLVLM_TEMPLATE)
    if real_size:
        # SmolVLM-256M-Instruct: SigLIP-base/16 at 512 px + SmolLM2-135M, pixel shuffle 4.
        image_size, patch, scale = 512, 16, 4
        vision = dict(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12
        )
        text = dict(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            vocab_size=49280,
            rope_theta=100000.0,
            max_position_embeddings=8192,
        )
    else:
        image_size, patch, scale = 64, 8, 2
        vision = dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
        )
        text = dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(tok),
            max_position_embeddings=4096,
        )
    eou = tok.convert_tokens_to_ids("<end_of_utterance>")
    config = Idefics3Config(
        vision_config=dict(vision, patch_size=patch, image_size=image_size),
        text_config=dict(
            text,
            model_type="llama",
            tie_word_embeddings=True,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=eou,
        ),
        scale_factor=scale,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
    )
    image_processor = Idefics3ImageProcessor(
        do_image_splitting=True,
        size={"longest_edge": image_size * 4},
        max_image_size={"longest_edge": image_size},
    )
    seq_len = (image_size // patch) ** 2 // scale**2
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tok,
        image_seq_len=seq_len,
        chat_template=SMOLVLM_TEMPLATE,
    )
    return config, processor


def qwen2vl_parts(real_size: bool = False) -> tuple[Any, Any]:
    """(config, processor) of a Qwen2-VL: tiny, or shaped like Qwen2-VL-2B."""
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = hf_tokenizer(QWEN2VL_SPECIALS, QWEN2VL_TEMPLATE)
    if real_size:
        vision = dict(depth=32, embed_dim=1280, hidden_size=1536, num_heads=16)
        text = dict(
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            vocab_size=151936,
            max_position_embeddings=32768,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [16, 24, 24],
            },
        )
    else:
        vision = dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2)
        text = dict(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=len(tok),
            max_position_embeddings=4096,
            rope_parameters={
                "rope_type": "default",
                "rope_theta": 1000000.0,
                "mrope_section": [2, 3, 3],
            },
        )
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN2VL_SPECIALS}
    config = Qwen2VLConfig(
        vision_config=dict(vision, patch_size=14, spatial_merge_size=2, temporal_patch_size=2),
        text_config=dict(
            text,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    # Bounded pixels: 4..256 merged tokens per image for the tiny build.
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 256}
    )
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN2VL_TEMPLATE,
    )
    return config, processor


EMBEDDING_SCALE = 10.0


def random_model(config: Any, seed: int = 0) -> Any:
    """Random-weight model for a VLM config (deterministic for a given seed and torch)."""
    import torch
    from transformers import AutoModelForImageTextToText

    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config)
    # With the default 0.02-std init, tied embeddings cap every logit near +-1.5, so the output
    # distribution stays nearly uniform and adapters (which cannot change the frozen, tied
    # output layer) barely learn. Trained checkpoints have far larger embeddings; scaling the
    # random ones 10x gives the tiny build a real model's logit range.
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(EMBEDDING_SCALE)
    gen = model.generation_config
    eos = config.get_text_config().eos_token_id
    gen.eos_token_id, gen.pad_token_id = eos, config.get_text_config().pad_token_id
    return model.eval()


def build_smolvlm(out: Path) -> None:
    config, processor = smolvlm_parts()
    random_model(config).save_pretrained(out)
    processor.save_pretrained(out)


def build_qwen2vl(out: Path) -> None:
    config, processor = qwen2vl_parts()
    random_model(config).save_pretrained(out)
    processor.save_pretrained(out)

"""Tiny random-weight builds of the other open VLM families: Qwen2.5-VL, LLaVA-1.5 (CLIP +
projector + Llama), InternVL (transformers-native, as InternVL3-1B-hf) and GLM-4.1V.

Each is the real transformers architecture at small widths, with a locally trained tokenizer,
the family's own processor class and a chat template written like the published one (images
and text parts; videos and tool calls left out). They are saved and loaded through the same
code as real weights (``mmdemo.models.backends.vlm``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdemo.models.tiny.tokenizer import hf_tokenizer
from mmdemo.models.tiny.vlm import QWEN2VL_SPECIALS, QWEN2VL_TEMPLATE, random_model

# Tiny language model shared by the builds (Llama / Qwen2 / GLM-4 decoders at this width).
TEXT = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=4096,
)

# Qwen2.5-VL-Instruct ships Qwen2-VL's chat template (same special tokens, same system line).
QWEN25VL_TEMPLATE = QWEN2VL_TEMPLATE

# llava-hf/llava-1.5-*-hf: "USER: <image>\n... ASSISTANT:"; images first, then the text
# (Vicuna v1 format). The assistant turn ends with </s>, which Vicuna was trained to emit.
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '</s>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
LLAVA_SPECIALS = ("<s>", "</s>", "<unk>", "<pad>", "<image>")

# OpenGVLab/InternVL3-1B-hf: ChatML (Qwen2.5 LM); each image is one <IMG_CONTEXT> that the
# processor expands to <img> + image_seq_length context tokens per tile + </img>.
INTERNVL_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
INTERNVL_NAMED = {
    "start_image_token": "<img>",
    "end_image_token": "</img>",
    "context_image_token": "<IMG_CONTEXT>",
    "video_token": "<video>",
}

# THUDM/GLM-4.1V-9B-Thinking: [gMASK]<sop>, role tags, each image between begin/end tags;
# generation stops at <|endoftext|> or the next <|user|>.
GLM4V_TEMPLATE = (
    "[gMASK]<sop>{% for message in messages %}{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<|begin_of_image|><|image|><|end_of_image|>' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '<|endoftext|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
GLM4V_SPECIALS = (
    "[gMASK]",
    "<sop>",
    "<|system|>",
    "<|user|>",
    "<|assistant|>",
    "<|observation|>",
    "<|begin_of_image|>",
    "<|end_of_image|>",
    "<|image|>",
    "<|begin_of_video|>",
    "<|end_of_video|>",
    "<|video|>",
)


def qwen25vl_parts() -> tuple[Any, Any]:
    """(config, processor) of a tiny Qwen2.5-VL: window attention in the vision tower (one
    full-attention block), an MLP merger, 3-D rope in the language model."""
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = hf_tokenizer(QWEN2VL_SPECIALS, QWEN25VL_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN2VL_SPECIALS}
    rope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]}
    config = Qwen2_5_VLConfig(
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=TEXT["hidden_size"],
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,  # 2x2 merged tokens a window at this patch size
            fullatt_block_indexes=[1],
        ),
        text_config=dict(
            TEXT,
            vocab_size=len(tok),
            rope_parameters=rope,
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
    image_processor = Qwen2VLImageProcessor(
        size={"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 256}
    )
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN25VL_TEMPLATE,
    )
    return config, processor


def llava_parts() -> tuple[Any, Any]:
    """(config, processor) of a tiny LLaVA-1.5: CLIP ViT (second-to-last layer, CLS dropped),
    a two-layer GELU projector, a Llama decoder."""
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaProcessor

    tok = hf_tokenizer(
        LLAVA_SPECIALS,
        LLAVA_TEMPLATE,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
    )
    image_size, patch = 56, 14
    config = LlavaConfig(
        vision_config=dict(
            model_type="clip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            patch_size=patch,
            projection_dim=32,
        ),
        text_config=dict(
            TEXT,
            model_type="llama",
            vocab_size=len(tok),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
        ),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        tie_word_embeddings=True,
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS, which the "default" strategy drops
        chat_template=LLAVA_TEMPLATE,
    )
    return config, processor


def internvl_parts() -> tuple[Any, Any]:
    """(config, processor) of a tiny InternVL3: InternViT, pixel shuffle (0.5) and an MLP
    projector, a Qwen2 decoder; images tiled into up to 12 tiles of the ViT's size."""
    from transformers import (
        GotOcr2ImageProcessor,
        InternVLConfig,
        InternVLProcessor,
        InternVLVideoProcessor,
    )

    tok = hf_tokenizer(tuple(INTERNVL_NAMED.values()), INTERNVL_TEMPLATE, named=INTERNVL_NAMED)
    image_size, patch, ratio = 64, 8, 0.5
    config = InternVLConfig(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=[image_size, image_size],
            patch_size=[patch, patch],
        ),
        text_config=dict(
            TEXT,
            model_type="qwen2",
            vocab_size=len(tok),
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
        ),
        image_token_id=tok.context_image_token_id,
        image_seq_length=int((image_size // patch) ** 2 * ratio**2),
        downsample_ratio=ratio,
        tie_word_embeddings=True,
    )
    image_processor = GotOcr2ImageProcessor(
        size={"height": image_size, "width": image_size},
        crop_to_patches=True,
        min_patches=1,
        max_patches=12,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    processor = InternVLProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=InternVLVideoProcessor(),
        image_seq_length=config.image_seq_length,
        chat_template=INTERNVL_TEMPLATE,
    )
    return config, processor


def glm4v_parts() -> tuple[Any, Any]:
    """(config, processor) of a tiny GLM-4.1V: a ViT with 2-D rope, a conv downsample and a
    merger, a GLM-4 decoder with 3-D rope on half of each head."""
    from transformers import (
        Glm4vConfig,
        Glm4vImageProcessor,
        Glm4vProcessor,
        Glm4vVideoProcessor,
    )

    tok = hf_tokenizer(
        GLM4V_SPECIALS, GLM4V_TEMPLATE, bos_token="[gMASK]", eos_token="<|endoftext|>"
    )
    ids = {t: tok.convert_tokens_to_ids(t) for t in GLM4V_SPECIALS}
    rope = {
        "rope_type": "default",
        "rope_theta": 10000.0,
        "partial_rotary_factor": 0.5,
        "mrope_section": [1, 1, 2],  # head 16, half rotated: 4 frequency pairs
    }
    config = Glm4vConfig(
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            image_size=56,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            out_hidden_size=TEXT["hidden_size"],
        ),
        text_config=dict(
            TEXT,
            vocab_size=len(tok),
            rope_parameters=rope,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        image_token_id=ids["<|image|>"],
        video_token_id=ids["<|video|>"],
        image_start_token_id=ids["<|begin_of_image|>"],
        image_end_token_id=ids["<|end_of_image|>"],
        video_start_token_id=ids["<|begin_of_video|>"],
        video_end_token_id=ids["<|end_of_video|>"],
        tie_word_embeddings=True,
    )
    image_processor = Glm4vImageProcessor(
        size={"shortest_edge": 28 * 28 * 4, "longest_edge": 28 * 28 * 256}
    )
    processor = Glm4vProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        video_processor=Glm4vVideoProcessor(),
        chat_template=GLM4V_TEMPLATE,
    )
    return config, processor


def _save(parts: tuple[Any, Any], out: Path, eos: tuple[str, ...] = ()) -> None:
    config, processor = parts
    model = random_model(config)
    if eos:  # more than one token ends a turn (GLM: <|endoftext|> or the next <|user|>)
        tok = processor.tokenizer
        model.generation_config.eos_token_id = [tok.convert_tokens_to_ids(t) for t in eos]
    model.save_pretrained(out)
    processor.save_pretrained(out)


def build_qwen25vl(out: Path) -> None:
    _save(qwen25vl_parts(), out)


def build_llava(out: Path) -> None:
    _save(llava_parts(), out)


def build_internvl(out: Path) -> None:
    _save(internvl_parts(), out)


def build_glm4v(out: Path) -> None:
    _save(glm4v_parts(), out, eos=("<|endoftext|>", "<|user|>", "<|observation|>"))

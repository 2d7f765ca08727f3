"""Tiny random-weight audio LLM: Qwen2-Audio (a Whisper-style encoder feeding a Qwen2 text
model) at width 32, with a local tokenizer and the real processor and chat template."""

from __future__ import annotations

from pathlib import Path

AUDIO_SPECIALS = ("<|audio_bos|>", "<|AUDIO|>", "<|audio_eos|>")


def build_qwen2audio(out: Path) -> None:
    """Qwen2AudioForConditionalGeneration: 2 encoder + 2 decoder layers, 128 mel bins."""
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        Qwen2Config,
        WhisperFeatureExtractor,
    )

    from mmdemo.models.tiny.tokenizer import hf_tokenizer

    tok = hf_tokenizer(extra_specials=AUDIO_SPECIALS)
    # the processor's own default template is Qwen2-Audio-7B-Instruct's chat template
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128), tokenizer=tok
    )
    audio_id = tok.convert_tokens_to_ids("<|AUDIO|>")
    eos, pad = tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2AudioConfig(
        audio_config=Qwen2AudioEncoderConfig(
            num_mel_bins=128,
            encoder_layers=2,
            encoder_attention_heads=2,
            encoder_ffn_dim=64,
            d_model=32,
            max_source_positions=1500,
        ).to_dict(),
        text_config=Qwen2Config(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=4096,
            eos_token_id=eos,
            pad_token_id=pad,
            bos_token_id=tok.bos_token_id,
        ).to_dict(),
        audio_token_index=audio_id,
    )
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=eos, pad_token_id=pad, bos_token_id=tok.bos_token_id, do_sample=False
    )
    model.save_pretrained(out)
    processor.save_pretrained(out)

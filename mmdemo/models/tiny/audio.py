"""Tiny random-weight speech models: Whisper (ASR) and VITS (TTS), with local tokenizers."""

from __future__ import annotations

import json
import string
from pathlib import Path

WHISPER_SPECIALS = (
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
)


def build_whisper(out: Path) -> None:
    """An English-only Whisper (like tiny.en) with 2+2 layers of width 32."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    from mmdemo.models.tiny.tokenizer import bpe_vocab_and_merges

    vocab, merges = bpe_vocab_and_merges()
    tok = WhisperTokenizer(vocab=vocab, merges=merges)
    tok.add_special_tokens({"additional_special_tokens": list(WHISPER_SPECIALS)})
    tok.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])  # timestamp tokens
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", *WHISPER_SPECIALS)}
    eot = ids["<|endoftext|>"]
    config = WhisperConfig(
        vocab_size=len(tok),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=448,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=eot,
        pad_token_id=eot,
        bos_token_id=eot,
        no_timestamps_token_id=ids["<|notimestamps|>"],
        is_multilingual=False,
        max_length=448,
        suppress_tokens=[],
        begin_suppress_tokens=[eot],
        lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        prev_sot_token_id=ids["<|startofprev|>"],
        alignment_heads=[[1, 0]],
    )
    model.save_pretrained(out)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tok
    ).save_pretrained(out)


def build_vits(out: Path) -> None:
    """A character-level VITS (the MMS-TTS architecture) at 16 kHz with width 32."""
    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    chars = ["<pad>", "<unk>", *(" " + string.ascii_lowercase + "0123456789'.,?!-")]
    out.mkdir(parents=True, exist_ok=True)
    vocab_file = out / "vocab.json"
    vocab_file.write_text(json.dumps({c: i for i, c in enumerate(chars)}), encoding="utf-8")
    tok = VitsTokenizer(str(vocab_file), phonemize=False, add_blank=True, normalize=True)
    config = VitsConfig(
        vocab_size=len(chars),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        ffn_dim=64,
        flow_size=32,
        spectrogram_bins=65,
        upsample_initial_channel=32,
        upsample_rates=[8, 8, 2, 2],
        upsample_kernel_sizes=[16, 16, 4, 4],
        resblock_kernel_sizes=[3],
        resblock_dilation_sizes=[[1, 3, 5]],
        duration_predictor_filter_channels=32,
        prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2,
        sampling_rate=16000,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    VitsModel(config).eval().save_pretrained(out)
    tok.save_pretrained(out)

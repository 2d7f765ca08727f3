"""A small byte-level BPE tokenizer, trained locally in well under a second.

Real tokenizers live on the Hub; tiny builds need one that exists offline. Byte-level BPE over
the full byte alphabet encodes any text, so the tiny models accept whatever a user types.
"""

from __future__ import annotations

from typing import Any

CORPUS = """\
What is in this image? Describe the picture in detail. The image shows a cat sitting on a sofa.
A photo of a dog running in the park. There is a red car parked next to a blue house.
How many people are there? Two people are walking along the beach at sunset.
The astronaut is wearing a white space suit and holding a helmet. A rocket on the launch pad.
What color is the square? The square is red. The circle is green. The triangle is yellow.
Read the text in the image. The sign says stop. The chart shows sales growing every year.
Is this a medical scan? The x-ray shows the chest; the lungs look clear with no fracture.
Answer the question briefly. Yes. No. Maybe. I am not sure. Left, right, top, bottom, center.
One two three four five six seven eight nine ten hundred thousand first second third last.
black white gray grey red orange yellow green blue purple pink brown dark light bright pale.
big small large tiny tall short wide narrow round square long flat old new young happy sad.
cat dog bird horse fish cow sheep person man woman child boy girl hand face eye tree flower.
house car bus train plane boat road street city room table chair bed door window book phone.
Hello! How can I help you today? Thank you. Please speak clearly. Good morning, good night.
The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs.
Hey there matey, arr, ahoy! Shiver me timbers, the treasure be buried on the island.
Summary: the video begins with an introduction, then a demonstration, and ends with a recap.
Gesture: thumbs up, thumbs down, open palm, closed fist, pointing up, victory, i love you.
"""

BASE_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def train_tokenizer(vocab_size: int = 1024, extra_specials: tuple[str, ...] = ()) -> Any:
    """A ``tokenizers.Tokenizer`` with byte-level BPE and the given special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[*BASE_SPECIALS, *extra_specials],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = CORPUS.splitlines()
    tok.train_from_iterator(lines * 20, trainer)
    return tok


def hf_tokenizer(
    extra_specials: tuple[str, ...] = (),
    chat_template: str | None = None,
    named: dict[str, str] | None = None,
    **special_map: str,
) -> Any:
    """A transformers fast tokenizer around :func:`train_tokenizer`. ``named`` gives special
    tokens a name the processor reads from the tokenizer (InternVL: ``context_image_token``)."""
    from transformers import PreTrainedTokenizerFast

    base = train_tokenizer()
    kwargs: dict[str, Any] = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        **special_map,
    }
    if named:
        kwargs["extra_special_tokens"] = dict(named)
    tok = PreTrainedTokenizerFast(tokenizer_object=base, **kwargs)
    if extra_specials:
        tok.add_special_tokens({"additional_special_tokens": list(extra_specials)})
    if chat_template:
        tok.chat_template = chat_template
    return tok


def bpe_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The trained BPE as (vocab, merges), for tokenizer classes that build their own model."""
    import json

    data = json.loads(train_tokenizer().to_str())
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]
    ]
    return dict(data["model"]["vocab"]), merges


CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'text' %}"
    "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

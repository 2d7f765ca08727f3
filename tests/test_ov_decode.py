"""The OpenVINO decode route of the text LLM (models/ov_decode.py) on a tiny Llama: the same
greedy answers as eager torch in float32, through the voice assistant's responder too; Stop
ends the OpenVINO steps; the traced step is saved once and read back; clear refusals.

The tiny build answers every prompt with one repeated token (its weights are small), so
these tests use a copy with larger random weights whose answers differ per prompt and step."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import pytest

# found without importing it: importing OpenVINO before its telemetry is turned off sends a
# usage report from a forked copy of this process
if importlib.util.find_spec("openvino") is None:
    pytest.skip("OpenVINO is not installed", allow_module_level=True)

from mmdemo.config import Settings
from mmdemo.errors import SettingsError
from mmdemo.flows.responders import GenerationConfig, TextLLMResponder
from mmdemo.models import ov_decode
from mmdemo.models.manager import ModelManager
from tests.helpers import chaotic_build

PROMPTS = ("hello there", "what is in the picture?", "tell me a long story about a cat")


@pytest.fixture(scope="module")
def chaotic(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Tiny settings whose text LLM is the tiny Llama (grouped KV heads, tied embeddings)
    with larger random weights, in float32 (built once into the shared test home, so its
    traced step is saved once too)."""
    import torch
    from transformers import LlamaForCausalLM

    def larger(config: Any) -> Any:
        config.initializer_range = 0.3
        torch.manual_seed(1)
        return LlamaForCausalLM(config)

    staging = tmp_path_factory.mktemp("chaotic-llm")
    folder = chaotic_build(tiny_settings.models_dir, "chaotic-llm", "llm", larger, staging)
    return tiny_settings.replace(llm=str(folder), dtype="float32")


@pytest.fixture(scope="module")
def managers(chaotic: Settings) -> Any:
    """Two managers on the same text LLM in float32: eager torch and OpenVINO."""
    eager = ModelManager(chaotic.replace(decode="eager"))
    fast = ModelManager(chaotic.replace(decode="openvino"))
    yield eager, fast
    eager.unload_all()
    fast.unload_all()


def greedy(bundle: Any, prompt: str, tokens: int = 24, **extra: Any) -> list[int]:
    """The answer's token ids (greedy unless ``extra`` says otherwise)."""
    import torch

    messages = [{"role": "user", "content": prompt}]
    inputs = bundle.tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        out = bundle.model.generate(
            **inputs,
            max_new_tokens=tokens,
            min_new_tokens=tokens,  # the random model may end early: compare every step
            **{"do_sample": False, **extra},
            **bundle.generate_kwargs(inputs["input_ids"]),
        )
    return out[0, inputs["input_ids"].shape[1] :].tolist()


def test_the_openvino_route_gives_eager_torchs_greedy_answers(managers: Any) -> None:
    eager, fast = (m.get("llm") for m in managers)
    assert eager.decode_route == "eager"
    assert fast.decode_route == "openvino (f32)"
    before = fast.decoder.steps
    answers = [greedy(eager, prompt) for prompt in PROMPTS]
    assert len({tuple(a) for a in answers}) == len(PROMPTS)  # every prompt its own answer
    assert all(len(set(a)) > 5 for a in answers)  # and not one token repeated
    for prompt, answer in zip(PROMPTS, answers, strict=True):
        assert greedy(fast, prompt) == answer, prompt
    # and the answers really came from OpenVINO steps (23 per answer after the prefill)
    assert fast.decoder.steps - before == 23 * len(PROMPTS)
    # a repetition penalty (the voice assistant's) goes through transformers' processors
    assert greedy(fast, PROMPTS[2], repetition_penalty=1.3) == greedy(
        eager, PROMPTS[2], repetition_penalty=1.3
    )
    assert greedy(fast, PROMPTS[2], repetition_penalty=1.3) != greedy(fast, PROMPTS[2])


def test_the_voice_responder_answers_the_same_on_both_routes(managers: Any) -> None:
    """Through the voice assistant's text responder: chat template, cached system prompt,
    sentence limit and the streamed text, as a user hears it."""
    config = GenerationConfig(max_sentences=0, max_new_tokens=32)
    said = {}
    for name, manager in zip(("eager", "openvino"), managers, strict=True):
        responder = TextLLMResponder(manager, config)
        said[name] = ["".join(responder.respond((), q, None, threading.Event())) for q in PROMPTS]
    assert said["openvino"] == said["eager"]
    assert len(set(said["eager"])) == len(PROMPTS)  # the prompts get different answers


def test_stop_ends_the_openvino_steps(managers: Any) -> None:
    _, fast = managers
    bundle = fast.get("llm")
    responder = TextLLMResponder(fast, GenerationConfig(max_sentences=0, max_new_tokens=200))
    stop = threading.Event()
    before = bundle.decoder.steps
    pieces = []
    for piece in responder.respond((), PROMPTS[2], None, stop):
        pieces.append(piece)
        if len(pieces) == 3:
            stop.set()  # Stop pressed while the answer streams
    steps = bundle.decoder.steps - before
    assert pieces and steps < 20, f"{steps} OpenVINO steps ran after Stop"
    assert not [t for t in threading.enumerate() if t.name == "mmdemo-generate"]


def test_the_traced_step_is_saved_once_and_read_back(
    managers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = managers[0].get("llm")
    source = Path(bundle.model.name_or_path)
    first = ov_decode.OpenVINODecoder(bundle.model, tmp_path, source)
    saved = list(tmp_path.glob("*/step.xml"))
    assert len(saved) == 1 and not list(tmp_path.glob(".step-*"))  # no half-written folder
    # traced in a child process told by OpenVINO's own consent file not to send telemetry
    consent = tmp_path / ".openvino-home" / "intel" / "openvino_telemetry"
    assert consent.read_text(encoding="utf-8") == "0"
    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(ov_decode, "export_in_child", lambda *a: calls.append(a))
        second = ov_decode.OpenVINODecoder(bundle.model, tmp_path, source)
    assert calls == []  # read from disk, not traced again
    assert greedy_with(second, bundle) == greedy_with(first, bundle)
    # a damaged step is traced again instead of failing the load, and a step of older code
    # for the same model is removed, not kept beside it
    saved[0].write_text("damaged", encoding="utf-8")
    stale = saved[0].parent.with_name(saved[0].parent.name.split("-")[0] + "-oldexporter")
    stale.mkdir()
    third = ov_decode.OpenVINODecoder(bundle.model, tmp_path, source)
    assert list(tmp_path.glob("*/step.xml")) == saved and not stale.exists()
    assert greedy_with(third, bundle) == greedy_with(first, bundle)


def test_openvino_is_told_to_send_no_telemetry_and_the_server_never_forks(
    chaotic: Settings, tmp_path: Path
) -> None:
    """In a fresh process with a home OpenVINO has never seen (as on a new server): loading
    the route writes OpenVINO's own opt-out file before OpenVINO is imported, and nothing
    forks (OpenVINO sends its usage reports from a forked copy of the process: a copy of
    pytest hung in a full run). subprocess's fork+exec of the exporter is not an os.fork."""
    import subprocess
    import sys

    data = tmp_path / "mmdemo-home"  # no saved step: this process has one traced
    code = (
        "import os; forks = []; os.register_at_fork(before=lambda: forks.append(1)); "
        "from mmdemo.config import Settings; from mmdemo.models.manager import ModelManager; "
        f"s = Settings(profile='tiny', home={str(data)!r}, device='cpu', "
        f"dtype='float32', decode='openvino', llm={chaotic.llm!r}); "
        "b = ModelManager(s).get('llm'); assert b.decoder is not None; print(len(forks))"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "0"
    assert (tmp_path / "intel" / "openvino_telemetry").read_text(encoding="utf-8") == "0"
    assert list((data / "models" / "openvino-steps").glob("*/step.xml"))


def greedy_with(decoder: Any, bundle: Any) -> list[int]:
    from dataclasses import replace

    return greedy(replace(bundle, decoder=decoder), PROMPTS[0], tokens=8)


def test_an_opt_out_that_cannot_be_written_keeps_openvino_off(
    chaotic: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "intel").write_text("a file where the folder should be")
    monkeypatch.setenv("HOME", str(tmp_path))
    auto = ModelManager(chaotic.replace(decode="auto", profile="cpu"))
    try:
        assert auto.get("llm").decode_route == "eager"
        with pytest.raises(ov_decode.DecodeUnavailableError, match="opt-out file"):
            ov_decode.decoder_for(auto.get("llm").model, "openvino", tmp_path / "steps", None)
    finally:
        auto.unload_all()


def test_sampling_goes_through_the_openvino_steps_and_follows_the_seed(managers: Any) -> None:
    from transformers import set_seed

    _, fast = managers
    bundle = fast.get("llm")

    def sample(seed: int) -> list[int]:
        set_seed(seed)
        return greedy(bundle, PROMPTS[1], do_sample=True, temperature=1.5, top_p=0.95)

    assert sample(3) == sample(3)
    assert sample(3) != sample(4)


def test_asking_for_openvino_where_it_cannot_serve_says_why(
    tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mmdemo.errors import MMDemoError

    monkeypatch.setattr(ov_decode, "openvino_version", lambda: None)
    manager = ModelManager(tiny_settings.replace(dtype="float32", decode="openvino"))
    with pytest.raises(MMDemoError, match="OpenVINO is not installed") as caught:
        manager.get("llm")
    assert "MMDEMO_DECODE=eager" in str(caught.value.fix)
    # auto falls back to eager torch where OpenVINO cannot serve
    auto = ModelManager(tiny_settings.replace(profile="cpu", llm="tiny:llm", decode="auto"))
    try:
        assert auto.get("llm").decode_route == "eager"
    finally:
        auto.unload_all()


def test_a_bad_decode_setting_is_refused() -> None:
    with pytest.raises(SettingsError, match="MMDEMO_DECODE"):
        Settings(decode="fast")


def test_the_transformers_details_the_trace_relies_on() -> None:
    """Pinned: the step fills a DynamicCache's layers directly (``keys``, ``values``,
    ``is_initialized``) and swaps the attention through the public registries. On a
    transformers upgrade re-check DynamicLayer's attributes and that OpenVINO still fuses
    the attention (bench decode's operator count) before widening this range."""
    import transformers
    from transformers import DynamicCache, LlamaConfig
    from transformers.cache_utils import DynamicLayer

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    assert (major, minor) >= (5, 23) and major < 6, transformers.__version__
    layer = DynamicCache(config=LlamaConfig(num_hidden_layers=1)).layers[0]
    assert isinstance(layer, DynamicLayer)
    assert {"keys", "values", "is_initialized"} <= set(vars(layer)) | {"keys", "values"}

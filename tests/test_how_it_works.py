"""The How-it-works tab: a VLM's parts, image tokens and fine-tuning shares, CLIP's contrastive
loss, few-shot on frozen embeddings, the endpoints; the numbers checked against hand-computed
values and against the libraries' own counts (PEFT, open_clip). Audio units are in
test_how_audio_units.py."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mmdemo.config import Settings
from mmdemo.errors import BadInputError, NotAllowedError
from mmdemo.flows.how.contrastive import contrast, derangement, info_nce
from mmdemo.flows.how.fewshot import few_shot, nearest_centroid
from mmdemo.flows.how.service import HowItWorks, label_from_name, parse_shots
from mmdemo.models.manager import ModelManager
from tests.bad_inputs import png_bytes, wav_file


@pytest.fixture(scope="module")
def how(tiny_settings: Settings, shared_manager: ModelManager) -> HowItWorks:
    return HowItWorks(tiny_settings, shared_manager)


def png(path: Path, size: tuple[int, int] = (64, 48), color: str = "red") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(size, color))
    return str(path)


# contrastive ------------------------------------------------------------------------------
def test_info_nce_matches_hand_computed_2x2_cases() -> None:
    # diagonal 2, off-diagonal 0: every row and column has CE = log(1 + e^-2) = 0.126928
    out = info_nce([[2.0, 0.0], [0.0, 2.0]])
    assert out["loss_image_to_text"] == pytest.approx(0.126928, abs=1e-6)
    assert out["loss_text_to_image"] == pytest.approx(0.126928, abs=1e-6)
    assert out["loss"] == pytest.approx(0.126928, abs=1e-6)
    assert out["accuracy_image_to_text"] == out["accuracy_text_to_image"] == 1.0
    assert float(out["image_to_text"][0][0]) == pytest.approx(0.880797, abs=1e-6)  # e²/(e²+1)
    # [[1, 3], [0, 2]]: rows: log(1+e^2) = 2.126928 and log(1+e^-2) = 0.126928 -> 1.126928;
    # columns [1, 0] and [3, 2]: log(1+e^-1) = 0.313262 and log(1+e) = 1.313262 -> 0.813262
    out = info_nce([[1.0, 3.0], [0.0, 2.0]])
    assert out["loss_image_to_text"] == pytest.approx(1.126928, abs=1e-6)
    assert out["loss_text_to_image"] == pytest.approx(0.813262, abs=1e-6)
    assert out["loss"] == pytest.approx(0.970095, abs=1e-6)
    # image 0 prefers caption 1 (miss), image 1 its own; caption 0 its own image, caption 1 not
    assert out["accuracy_image_to_text"] == out["accuracy_text_to_image"] == 0.5


def test_contrast_scales_cosines_by_the_temperature() -> None:
    # orthonormal pairs at scale 2 are the first case above; lengths do not matter (cosines)
    found = contrast([[3.0, 0.0], [0.0, 0.5]], [[1.0, 0.0], [0.0, 2.0]], scale=2.0)
    assert found.cosine == [[1.0, 0.0], [0.0, 1.0]]
    assert found.logits == [[2.0, 0.0], [0.0, 2.0]]
    assert found.loss == pytest.approx(0.126928, abs=1e-6)
    assert found.chance_loss == pytest.approx(math.log(2))


def test_a_shuffle_moves_every_caption_and_repeats_for_a_seed() -> None:
    for n in (2, 3, 7):
        order = derangement(n, seed=5)
        assert sorted(order) == list(range(n)) and all(i != j for i, j in enumerate(order))
        assert derangement(n, seed=5) == order


def test_contrastive_on_clip_matches_open_clips_own_loss(how: HowItWorks, tmp_path: Path) -> None:
    from open_clip.loss import ClipLoss

    from mmdemo.retrieval.embed import embed_images, embed_texts

    colours = ("red", "blue", "green")
    files = [png(tmp_path / f"{c}.png", color=c) for c in colours]
    captions = [f"a {c} picture" for c in colours]
    data = how.contrastive(files, "\n".join(captions))
    bundle = how.manager.get("clip")
    scale = bundle.model.logit_scale.exp().detach().float()
    assert data["scale"] == pytest.approx(scale.item())
    image_emb = torch.tensor(embed_images(bundle, files))
    text_emb = torch.tensor(embed_texts(bundle, captions))
    expected = ClipLoss()(image_emb, text_emb, scale)
    assert data["loss"] == pytest.approx(float(expected), abs=1e-4)
    assert data["images"] == ["red.png", "blue.png", "green.png"]
    assert data["random_weights"] is True and Path(data["heatmap"]).is_file()
    for row in data["image_to_text"]:
        assert sum(row) == pytest.approx(1.0, abs=1e-5)

    shuffled = how.contrastive(files, captions, shuffle=True, seed=1)
    order = shuffled["caption_order"]
    assert shuffled["loss_in_order"] == pytest.approx(data["loss"], abs=1e-9)
    assert shuffled["captions"] == [captions[i] for i in order]
    assert all(i != j for i, j in enumerate(order))
    permuted = ClipLoss()(image_emb, text_emb[order], scale)
    assert shuffled["loss"] == pytest.approx(float(permuted), abs=1e-4)


def test_contrastive_refuses_unpaired_input(how: HowItWorks, tmp_path: Path) -> None:
    one = png(tmp_path / "a.png")
    with pytest.raises(BadInputError, match="2 images but 1 captions"):
        how.contrastive([one, one], "only one caption")
    with pytest.raises(BadInputError, match="1 image-caption pairs"):
        how.contrastive([one], "a caption")
    samples = how.contrastive(None, "", use_samples=True)
    assert samples["images"][0] == "cat.jpg" and len(samples["captions"]) == len(samples["images"])


# few-shot ---------------------------------------------------------------------------------
def test_nearest_centroid_on_hand_made_vectors() -> None:
    support = [[1.0, 0.0], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9]]
    labels = [0, 0, 1, 1]
    # by cosine, not length: [5, 4] leans to class 0 although class 1's points are nearer
    queries = [[0.9, 0.1], [0.2, 0.8], [5.0, 4.0], [0.0, 3.0]]
    assert nearest_centroid(support, labels, queries, 2).tolist() == [0, 1, 0, 1]
    with pytest.raises(ValueError, match="class 2 has no support"):
        nearest_centroid(support, labels, queries, 3)


def test_few_shot_episodes_on_constructed_embeddings() -> None:
    # three classes, three images each, every image close to its class's axis
    axes = torch.eye(3)
    gen = torch.Generator().manual_seed(0)
    emb = torch.cat([axes[c] + 0.05 * torch.randn(3, 3, generator=gen) for c in range(3)])
    labels = ["cat"] * 3 + ["dog"] * 3 + ["owl"] * 3
    always_cat = [0] * 9  # a zero-shot guess that says "cat" to everything
    result = few_shot(emb, labels, shots=(1, 2, 5), episodes=4, seed=0, zero_shot=always_cat)
    one, two, five = result.results
    assert (one.accuracy, two.accuracy) == (1.0, 1.0)
    assert (one.queries, two.queries) == (6, 3)  # 3 x (3 - k) images left to score
    # the scored images are balanced, so "always cat" is right on a third of them
    assert one.zero_shot_accuracy == pytest.approx(1 / 3) and result.zero_shot_all == 1 / 3
    assert five.accuracy is None and "has 3 image(s)" in five.skipped
    assert result.classes == ("cat", "dog", "owl") and result.chance == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("cat-01.jpg", "cat"),
        ("/up/x/red_circle_2.png", "red circle"),
        ("dog (3).jpeg", "dog"),
        ("owl.png", "owl"),
        ("7.png", "7"),
    ],
)
def test_labels_come_from_file_names(name: str, label: str) -> None:
    assert label_from_name(name) == label


def test_shots_are_parsed_and_bounded() -> None:
    assert parse_shots("5, 1,2") == [1, 2, 5] and parse_shots("") == [1, 2, 5]
    with pytest.raises(BadInputError, match="outside"):
        parse_shots("0")


def test_few_shot_from_uploads_a_folder_and_the_shapes(
    how: HowItWorks, tmp_path: Path, tiny_settings: Settings
) -> None:
    files = [png(tmp_path / f"{c}-{i}.png", color=c) for c in ("red", "blue") for i in range(3)]
    data = how.few_shot(files, "", shots="1, 2", episodes=2)
    assert data["classes"] == ["blue", "red"] and data["per_class"] == {"blue": 3, "red": 3}
    assert [r["shots"] for r in data["results"]] == [1, 2]
    for r in data["results"]:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["queries"] == 2 * (3 - r["shots"])
    with pytest.raises(BadInputError, match="6 images but 2 labels"):
        how.few_shot(files, "red, blue")

    root = tmp_path / "classes"
    for c in ("red", "green"):
        for i in range(2):
            png(root / c / f"{i}.png", color=c)
    (root / "notes.txt").write_text("not a class")
    data = how.few_shot(folder=str(root), shots="1", episodes=1)
    assert data["per_class"] == {"green": 2, "red": 2}
    hosted = HowItWorks(tiny_settings.replace(hosted=True), how.manager)
    with pytest.raises(NotAllowedError, match="hosted"):
        hosted.few_shot(folder=str(root))

    shapes = hosted.few_shot(use_samples=True, shots=[1], episodes=1)
    assert shapes["classes"] == ["circle", "square", "triangle"] and shapes["images"] == 18


def test_bad_images_are_refused_with_cause_and_fix(how: HowItWorks, tmp_path: Path) -> None:
    """The bad-image corpus (tests/bad_inputs.py) against every view that decodes images."""
    import re

    from tests.bad_inputs import IMAGE_CASES, corpus

    bad = corpus(tmp_path / "bad", 2 * 2**20)
    good = png(tmp_path / "good.png")
    views = {
        "image_tokens": lambda f: how.image_tokens(f),
        "contrastive": lambda f: how.contrastive([good, f], "one\ntwo"),
        "fewshot": lambda f: how.few_shot([good, f, good, good], "a, a, b, b", shots="1"),
    }
    wrong = {}
    for view, call in views.items():
        for name in IMAGE_CASES:
            if name == "oversized":  # stopped by the upload limit before any view
                continue
            case = bad[name]
            with pytest.raises(BadInputError) as caught:
                call(str(case.path))
            message = str(caught.value)
            if not (re.search(case.cause, message, re.IGNORECASE) and "Fix:" in message):
                wrong[view, name] = message
    assert wrong == {}


# anatomy ----------------------------------------------------------------------------------
def test_the_served_vlms_parts_add_up_to_the_model(how: HowItWorks) -> None:
    data = how.model_parts()
    loaded = how.manager.get_loaded("vlm")
    parts = {p["key"]: p for p in data["parts"]}
    assert {"vision", "projector", "language"} <= set(parts)
    assert sum(p["params"] for p in data["parts"]) == data["params"] == loaded.params
    # tiny SmolVLM's connector: 2x2 pixel shuffle of 32-wide patch vectors -> 64 wide, no bias
    assert parts["projector"]["params"] == (32 * 2 * 2) * 64
    assert parts["projector"]["module"] == "model.connector"
    size = torch.tensor([], dtype=getattr(torch, data["dtype"])).element_size()
    assert data["param_bytes"] == data["params"] * size
    # adapters other tests left resident on the served model are counted apart, not as parts
    served = how.manager.get("vlm").adapters.base
    resident = sum(p.numel() for n, p in served.named_parameters() if "lora_" in n)
    assert data["tied_embeddings"] is True and data["adapter_params"] == resident


def test_image_tokens_follow_the_served_processor(how: HowItWorks, tmp_path: Path) -> None:
    # on a CPU image splitting is off: the whole picture becomes one 64 px tile of 8 px
    # patches (8 x 8 = 64), pixel shuffle 2 x 2 -> 16 image tokens
    data = how.image_tokens(png(tmp_path / "wide.png", (300, 200)))
    assert (data["tiles"], data["patches"], data["image_tokens"]) == (1, 64, 16)
    assert data["tile_size"] == [64, 64] and data["splitting"] is False
    assert Path(data["picture"]).is_file()
    with pytest.raises(BadInputError, match="cannot be used"):
        how.image_tokens(str(tmp_path / "missing.png"))


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        # 300x200 -> longest side 256 -> 256x171 -> multiples of 64: 256x192 -> 3 rows x 4 cols
        # of 64 px tiles + the global tile = 13; each 8x8 patches / 2x2 shuffle = 16 tokens
        ("smolvlm", {"grid": (3, 4), "tiles": 13, "patches": 13 * 64, "image_tokens": 208}),
        # Qwen2-VL: sides rounded to 28 px: 308x196 -> 22x14 patches of 14 px = 308; merged
        # 2x2 -> 77 tokens
        ("qwen2vl", {"grid": (14, 22), "tiles": 1, "patches": 308, "image_tokens": 77}),
    ],
)
def test_image_tokens_hand_computed_for_both_families(family: str, expected: dict) -> None:
    from PIL import Image

    from mmdemo.flows.how.image_tokens import image_tokens
    from mmdemo.models.tiny.vlm import qwen2vl_parts, smolvlm_parts

    config, processor = {"smolvlm": smolvlm_parts, "qwen2vl": qwen2vl_parts}[family]()
    found = image_tokens(processor, config, Image.new("RGB", (300, 200), "red"))
    assert {k: getattr(found, k) for k in expected} == expected


# fine-tuning methods ----------------------------------------------------------------------
# tiny SmolVLM's language model: 2 layers, width 64, MLP 128, 2 KV heads of 16:
# q 64->64, k 64->32, v 64->32, o 64->64, gate/up 64->128, down 128->64
LORA_R8 = 2 * 8 * ((64 + 64) + (64 + 32) * 2 + (64 + 64) + (64 + 128) * 3)  # r x (in + out)
FULL = 2 * (64 * 64 + 64 * 32 * 2 + 64 * 64 + 64 * 128 * 3)
IA3 = 2 * (32 + 32 + 128)  # k and v outputs, the down projection's input


@pytest.mark.parametrize("method", ["lora", "dora", "ia3", "lora-fa", "dylora", "qlora"])
@pytest.mark.parametrize("attach", ["language", "all"])
def test_trainable_share_equals_pefts_own_count(method: str, attach: str) -> None:
    from mmdemo.flows.how.methods import prepare_on_meta
    from mmdemo.models.tiny.vlm import qwen2vl_parts, smolvlm_parts

    for parts in (smolvlm_parts, qwen2vl_parts):
        model, plan = prepare_on_meta(parts()[0], method, attach, 8)
        assert (plan.trainable, plan.total) == model.get_nb_trainable_parameters()
        assert plan.share == pytest.approx(plan.trainable / plan.total)
        assert sum(plan.by_part.values()) == plan.trainable


def test_method_plans_on_the_served_vlm_match_hand_counts(how: HowItWorks) -> None:
    served = how.manager.get("vlm").adapters.base
    before = {n: p.clone() for n, p in served.named_parameters()}
    plans = {m: how.method_plan(m, "language", 8) for m in ("lora", "full", "ia3", "bottleneck")}
    assert plans["lora"]["trainable"] == LORA_R8 == 16384
    assert plans["full"]["trainable"] == FULL
    assert plans["ia3"]["trainable"] == IA3
    assert plans["lora"]["by_kind"] == {
        k: 2 for k in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    }
    assert plans["bottleneck"]["by_kind"] == {"mlp": 2}
    assert plans["full"]["total"] == how.model_parts()["params"]  # nothing added, only unfrozen
    assert set(plans["lora"]["by_part"]) == {"language model"}
    both = how.method_plan("lora", "language+projector", 8)
    assert both["by_part"]["projector"] == (32 * 2 * 2) * 64  # the connector, trained whole
    # planning never touched the served model: the same parameters (names and values)
    after = dict(served.named_parameters())
    assert after.keys() == before.keys()
    assert all(torch.equal(after[n], before[n]) for n in before)
    with pytest.raises(BadInputError, match="unknown method"):
        how.method_plan("magic")


# the endpoints ----------------------------------------------------------------------------
def test_the_endpoints_answer_with_data(app: Any, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(app.demo.local_url, verbose=False)
    methods = {m["name"]: m for m in client.predict(api_name="/how_methods")}
    assert {"lora", "ia3", "bottleneck", "full"} <= set(methods)
    plan = client.predict("lora", "language", 8, api_name="/how_method")
    assert plan["trainable"] == LORA_R8 and plan["family"] == "peft"
    parts = client.predict(api_name="/how_parts")
    assert parts["model_id"] == "tiny:smolvlm" and parts["params"] > 0
    red = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"
    tokens = client.predict(handle_file(str(red)), api_name="/how_image_tokens")
    assert tokens["image_tokens"] == 16 and Path(tokens["picture"]).is_file()
    pairs = client.predict(None, "", False, True, 0, api_name="/how_contrastive")
    assert len(pairs["logits"]) == len(pairs["images"]) and Path(pairs["heatmap"]).is_file()
    tone = np.sin(np.arange(16000, dtype=np.float32) * 0.1).astype(np.float32)
    speech = str(wav_file(tmp_path / "tone.wav", tone))
    units = client.predict(handle_file(speech), 8, 0, api_name="/how_audio_units")
    assert units["units"] and "compared" not in units  # one clip, as before the second one
    both = client.predict(
        handle_file(speech), 8, 0, handle_file(speech), api_name="/how_audio_units"
    )
    assert both["compared"]["units"] == both["units"] == units["units"]
    assert both["compared"]["unit_edit_distance"] == 0.0


@pytest.mark.browser
def test_browser_shows_the_parts_the_heat_map_and_few_shot(
    page: Any, app: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from tests.conftest import screenshot_dir

    page.get_by_role("tab", name="How it works").click()
    page.locator("#how-parts").click()
    expect(page.locator("#how-parts-table")).to_contain_text("vision encoder", timeout=60_000)
    expect(page.locator("#how-parts-info")).to_contain_text("tiny:smolvlm")
    page.locator("#how-plan").click()
    expect(page.locator("#how-plan-info")).to_contain_text("16,384", timeout=60_000)
    red = Path(__file__).resolve().parents[1] / "assets" / "images" / "red-circle.png"
    page.locator("#how-image input[type=file]").set_input_files(str(red))
    expect(page.locator("#how-image")).to_contain_text("red-circle", timeout=60_000)
    page.locator("#how-tokens").click()
    expect(page.locator("#how-tokens-info")).to_contain_text("16 image tokens", timeout=60_000)
    expect(page.locator("#how-grid img")).to_be_visible()
    # the README's Anatomy, Few-shot and Audio pictures come from scripts/how_screenshots.py
    page.screenshot(path=str(tmp_path / "how-anatomy.png"), full_page=True)

    page.get_by_role("tab", name="Contrastive learning").click()
    page.locator("#how-pair-samples input").check()
    page.locator("#how-contrast").click()
    expect(page.locator("#how-contrast-info")).to_contain_text("InfoNCE", timeout=60_000)
    expect(page.locator("#how-heatmap img")).to_be_visible()
    page.locator("#how-shuffle").click()
    expect(page.locator("#how-contrast-info")).to_contain_text("In the true order", timeout=60_000)
    page.screenshot(path=str(screenshot_dir(tmp_path) / "how.png"), full_page=True)

    page.get_by_role("tab", name="Few-shot").click()
    page.locator("#how-shape-samples input").check()
    page.locator("#how-fewshot-run").click()
    expect(page.locator("#how-fewshot-info")).to_contain_text("circle (6)", timeout=60_000)

"""How the How-it-works tab shows the data its API returns (pure functions: data in, text or
rows out)."""

from __future__ import annotations

from typing import Any

PART_HEADERS = ["part", "module", "parameters", "share", "dtype", "MB (weights)"]
PLAN_HEADERS = ["module kind", "modules touched"]
CONTRAST_HEADERS_LEAD = "image \\ caption"
SHOT_HEADERS = ["shots per class", "episodes", "images scored", "few-shot accuracy", "zero-shot"]
RANDOM_CLIP = (
    "\n\n*This CLIP has random weights (tiny profile): the numbers show the mechanics, not "
    "what a trained CLIP would find.*"
)


def _mb(n: int) -> str:
    return f"{n / 2**20:.2f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1%}"


def count(n: int) -> str:
    """1,234 / 12.3 M / 1.23 B."""
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    return f"{n:,}"


def parts_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            p["title"],
            p["module"] or "—",
            count(p["params"]),
            _pct(p["share"]),
            ", ".join(p["dtypes"]) or "—",
            _mb(p["param_bytes"]),
        ]
        for p in data["parts"]
    ]


def parts_md(data: dict[str, Any]) -> str:
    tied = (
        " The output head reuses the input embeddings (tied): no extra weights."
        if data["tied_embeddings"]
        else ""
    )
    adapters = ""
    if data["adapter_params"]:
        names = ", ".join(data["resident_adapters"]) or "adapters"
        adapters = f" Resident adapters ({names}) add {count(data['adapter_params'])} weights."
    shape = ", ".join(f"{k} {v}" for k, v in data["shape"].items())
    return (
        f"**{data['model_id']}** ({data['model_class']}, {data['family']}) on {data['device']}, "
        f"{data['dtype']}: {count(data['params'])} parameters, "
        f"{_mb(data['param_bytes'] + data['buffer_bytes'])} MB.{tied}{adapters}\n\n"
        f"Image -> **vision encoder** (a ViT: one vector per patch) -> **projector** (maps "
        f"those vectors into the language model's width, merging neighbours) -> **language "
        f"model** (reads them as tokens among the text tokens).\n\n<small>{shape}</small>"
    )


def tokens_md(data: dict[str, Any]) -> str:
    steps = "\n".join(f"{i}. {s}" for i, s in enumerate(data["steps"], 1))
    return (
        f"**{data['image_tokens']} image tokens** for {data['model_id']} ({data['family']}); "
        f"the processor's pixel tensor is {tuple(data['pixel_values_shape'])}.\n\n{steps}\n\n"
        "<small>Red: tiles · yellow: the patches merged into one token · white: patches.</small>"
    )


def plan_md(data: dict[str, Any]) -> str:
    parts = ", ".join(f"{k}: {count(v)}" for k, v in data["by_part"].items()) or "none"
    note = f"\n\n{data['note']}" if data["note"] else ""
    shown = data["shown"]
    more = data["modules"] - len(shown)
    listing = "\n".join(f"- `{m}`" for m in shown[:12])
    if more or len(shown) > 12:
        listing += f"\n- … and {data['modules'] - min(len(shown), 12)} more"
    return (
        f"**{data['method']}** ({data['summary']}), attach **{data['attach']}**, rank "
        f"{data['rank']}: **{count(data['trainable'])}** trainable of {count(data['total'])} "
        f"parameters, the method's own included (**{data['share']:.3%}**), {_mb(data['trainable_bytes_fp32'])} MB in "
        f"float32, in {data['modules']} modules.\n\nTrainable by part: {parts}.{note}\n\n"
        f"{listing}"
    )


def plan_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [[kind, n] for kind, n in data["by_kind"].items()]


def contrast_md(data: dict[str, Any]) -> str:
    n = len(data["images"])
    change = ""
    if data["shuffled"]:
        change = (
            f" In the true order the loss was **{data['loss_in_order']:.4f}**: shuffling the "
            f"captions {'raised' if data['loss'] > data['loss_in_order'] else 'did not raise'} "
            "it."
        )
    return (
        f"{n} pairs, temperature 1/{data['scale']:.2f} (open_clip's `logit_scale.exp()` = "
        f"{data['scale']:.4f}). Loss image->text {data['loss_image_to_text']:.4f}, "
        f"text->image {data['loss_text_to_image']:.4f}; symmetric InfoNCE **{data['loss']:.4f}** "
        f"(chance: log {n} = {data['chance_loss']:.4f}). Top-1 matching: image->text "
        f"{_pct(data['accuracy_image_to_text'])}, text->image "
        f"{_pct(data['accuracy_text_to_image'])}.{change}"
        + (RANDOM_CLIP if data["random_weights"] else "")
    )


def contrast_frame(data: dict[str, Any]) -> Any:
    """The scaled logits as a table: one row per image, one column per caption."""
    import pandas as pd

    columns = [f"{j + 1}. {c[:24]}" for j, c in enumerate(data["captions"])]
    frame = pd.DataFrame(data["logits"], columns=columns)
    frame.insert(0, CONTRAST_HEADERS_LEAD, data["images"])
    return frame.round(3)


def shot_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            r["shots"],
            r["episodes"] or "—",
            r["queries"] or "—",
            _pct(r["accuracy"]) if not r["skipped"] else r["skipped"],
            _pct(r["zero_shot_accuracy"]),
        ]
        for r in data["results"]
    ]


def fewshot_md(data: dict[str, Any]) -> str:
    classes = ", ".join(f"{c} ({n})" for c, n in data["per_class"].items())
    prompt = data["prompt"].format("{label}")  # the template, as the tab's text writes it
    return (
        f"{data['images']} images in {len(data['classes'])} classes: {classes}. Chance "
        f'{_pct(data["chance"])}; CLIP zero-shot ("{prompt}") on every image: '
        f"{_pct(data['zero_shot_all'])}. Each episode picks the shots at random and scores the "
        "rest with the nearest class centroid of frozen CLIP embeddings."
        + (RANDOM_CLIP if data["random_weights"] else "")
    )


def units_md(data: dict[str, Any]) -> str:
    cut = " (cut at the limit)" if data.get("truncated") else ""
    text = (
        f"{data['seconds']:.2f} s of audio{cut} -> {data['frames']} frames "
        f"({data['frames_per_second']:.1f} per second) from layer {data['layer']} of "
        f"{data['encoder']} -> the nearest of K={data['units_k']} k-means centroids (codebook "
        f"fitted on {data['codebook']}) -> {data['raw_units']} units -> repeats merged: "
        f"**{len(data['units'])} units, {data['units_per_second']:.1f} per second**, "
        f"{data['distinct']} distinct."
    )
    other = data.get("compared")
    if other:
        cut = " (cut at the limit)" if other.get("truncated") else ""
        text += (
            f"\n\nSecond clip: {other['seconds']:.2f} s{cut} -> {len(other['units'])} units. "
            f"**Unit edit distance {other['unit_edit_distance']:.2f}** (edits to turn one unit "
            "sequence into the other over the longer one's length: 0 the same units, 1 none "
            "in common)."
        )
    return f"{text}\n\n**{data['note']}**"


def units_text(data: dict[str, Any] | None) -> str:
    return " ".join(str(u) for u in data["units"]) if data else ""

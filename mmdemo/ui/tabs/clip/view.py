"""How the CLIP tab shows the data its API returns (pure functions: data in, text or rows out)."""

from __future__ import annotations

from typing import Any

SKIPPED_HEADERS = ["file", "why it was skipped"]


def index_md(entry: dict[str, Any] | None, name: str) -> str:
    """One line about an index (an entry of ``/clip_indexes``), or how to make it."""
    if entry is None:
        return f"Index **{name}** does not exist yet: add images to create it."
    if "error" in entry:
        return f"Index **{name}** cannot be read: {entry['error']}"
    return (
        f"{entry['images']} images · model `{entry['model_id']}` ({entry['embed_dim']}-d, "
        f"{entry['dtype']}) · {entry['segments']} segment(s) · "
        f"{entry['disk_bytes'] / 2**20:.1f} MB · search: {entry['search']}"
    )


def add_md(report: dict[str, Any]) -> str:
    parts = [f"added {report['added']}"]
    for label, n in (
        ("duplicates skipped", report["duplicates"]),
        ("unchanged", report["unchanged"]),
        ("replaced", report["replaced"]),
        ("unreadable skipped", len(report["skipped"])),
        ("non-image files ignored", report["ignored"]),
    ):
        if n:
            parts.append(f"{label} {n}")
    rate = f" ({report['images_per_second']:.1f} img/s)" if report["added"] else ""
    return (
        f"Index **{report['index']}**: {', '.join(parts)} in {report['seconds']:.1f} s{rate}; "
        f"{report['total']} images now."
    )


def skipped_rows(report: dict[str, Any]) -> list[list[str]]:
    return [[s["file"], s["reason"]] for s in report["skipped"]]


def hit_caption(hit: dict[str, Any]) -> str:
    return f"{hit['rank']}. {hit['name']} · {hit['score']:.3f}"


def result_md(result: dict[str, Any]) -> str:
    if not result["hits"]:
        return f"No results for {result['query']}."
    return (
        f"{len(result['hits'])} results for {result['query']} among {result['searched']} images "
        f"({result['method']}, {result['seconds'] * 1000:.1f} ms). Click a result to search by it."
    )


def pick_choices(hits: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """Dropdown choices naming each hit, valued by its item id."""
    return [(f"{h['rank']}. {h['name']}", int(h["item_id"])) for h in hits]


def explain_md(data: dict[str, Any]) -> str:
    notes = "\n".join(f"- {n}" for n in data["notes"])
    return (
        f"**{data['name']}** vs {data['text']!r}: cosine {data['score']:.3f}; largest drop "
        f"{data['largest_drop']:.4f} on a {data['grid']}x{data['grid']} grid "
        f"({data['seconds']:.1f} s).\n\n{notes}"
    )


def classify_md(data: dict[str, Any]) -> str:
    top = data["labels"][0]
    return (
        f"**{top['label']}** ({top['probability']:.1%}), {len(data['templates'])} prompt "
        "templates ensembled."
    )


def classify_frame(data: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "label": [row["label"] for row in data["labels"]],
            "probability": [row["probability"] for row in data["labels"]],
        }
    )

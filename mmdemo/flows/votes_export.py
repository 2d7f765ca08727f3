"""The arena's blind votes as training data: a preference set for DPO and the chosen answers
as question/answer rows for every other method, with their images, in one new folder that the
Fine-tune tab reads as it is (a folder on this server, or its zip uploaded).

A vote for position W over the others gives one pair per other answer: (prompt, image,
chosen = W's answer, rejected = the other's). Ties and "all bad" say nothing about which
answer is better and are skipped (counted), as are pairs whose two answers are the same text.
Each vote with a winner also gives one SFT row (its image, prompt, chosen answer); the studio's
question/answer format needs an image, so votes whose image was not kept give pairs (a text
model trains on them) but no SFT row.

  votes-<time>/preferences.jsonl  {"prompt", "image", "chosen", "rejected", "id", ...}
  votes-<time>/sft.jsonl          {"image", "question", "answer", "id"}
  votes-<time>/images/<sha256>.png
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.errors import BadInputError
from mmdemo.flows.votes import BAD, IMAGES, TIE, VoteLog
from mmdemo.models.files import atomic_folder

PREFERENCES, SFT = "preferences.jsonl", "sft.jsonl"
IMAGE_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z]{3,4}$")
VOTE_FIX = (
    "run blind comparisons in the Arena tab (Compare blind) and vote for the better answer "
    "(A, B, ...), then export again"
)


@dataclass(frozen=True)
class VoteExport:
    """What an export wrote, and what it counted on the way."""

    folder: Path
    preferences: Path
    sft: Path
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "preferences": str(self.preferences),
            "sft": str(self.sft),
            "counts": dict(self.counts),
        }


def export_votes(votes_dir: Path, out_dir: Path, base_model: str = "") -> VoteExport:
    """Write the votes in ``votes_dir`` (``base_model``: only that board's) as a new folder
    under ``out_dir``; refused with the fix when no vote gives a pair."""
    log = VoteLog(votes_dir)
    _, votes, skipped_lines = log.read()
    if not votes:
        raise BadInputError(f"no arena votes in {log.path} yet", fix=VOTE_FIX)
    if base_model:
        boards = sorted({v["board"] for v in votes})
        votes = [v for v in votes if v["board"] == base_model]
        if not votes:
            raise BadInputError(
                f"no votes on base model {base_model!r}; the votes are on {', '.join(boards)}",
                fix="leave base_model empty for every vote, or name one of those",
            )
    counts = dict.fromkeys(
        ("votes", "pairs", "sft_rows", "ties", "both_bad", "same_answer", "without_image"), 0
    )
    counts["votes"], counts["skipped_lines"] = len(votes), skipped_lines
    pairs, sft, images = [], [], set()
    for vote in votes:
        if vote["winner"] in (TIE, BAD):
            counts["ties" if vote["winner"] == TIE else "both_bad"] += 1
            continue
        image = _image_of(votes_dir, vote)
        if not image:
            counts["without_image"] += 1
        made = _pairs(vote, image)
        counts["same_answer"] += len(vote["columns"]) - 1 - len(made)
        pairs += made
        if made and image:
            images.add(image)
            sft.append(
                {
                    "image": f"{IMAGES}/{image}",
                    "question": vote.get("prompt", ""),
                    "answer": made[0]["chosen"],
                    "id": vote.get("vote", ""),
                }
            )
    counts["pairs"], counts["sft_rows"] = len(pairs), len(sft)
    if not pairs:
        raise BadInputError(
            f"none of the {len(votes)} votes gives a preference pair ({counts['ties']} ties, "
            f"{counts['both_bad']} all bad, {counts['same_answer']} with identical answers): "
            "ties and 'all bad' do not say which answer is better",
            fix=VOTE_FIX,
        )
    target = Path(out_dir) / f"votes-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6}"
    with atomic_folder(target) as tmp:
        _write_jsonl(tmp / PREFERENCES, pairs)
        _write_jsonl(tmp / SFT, sft)
        if images:
            (tmp / IMAGES).mkdir()
        for name in sorted(images):
            _link_or_copy(votes_dir / IMAGES / name, tmp / IMAGES / name)
    return VoteExport(target, target / PREFERENCES, target / SFT, counts)


def archive(export: VoteExport, dest_dir: Path) -> Path:
    """A zip of the export (the Fine-tune tab's Upload takes it as it is), in ``dest_dir``."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    base = dest_dir / export.folder.name
    return Path(shutil.make_archive(str(base), "zip", root_dir=export.folder))


def _image_of(votes_dir: Path, vote: dict[str, Any]) -> str:
    """The kept image's file name, if the vote has one and it is still there."""
    kept = str(vote.get("image_file") or "")
    name = kept.removeprefix(f"{IMAGES}/")
    if not IMAGE_NAME.match(name) or not name.startswith(str(vote.get("image_sha256") or "-")):
        return ""  # none kept, or a record edited by hand: only our own names are read
    return name if (votes_dir / IMAGES / name).is_file() else ""


def _pairs(vote: dict[str, Any], image: str) -> list[dict[str, Any]]:
    """One pair per answer the winner was preferred over (identical answers left out)."""
    columns = {c["position"]: c for c in vote["columns"]}
    winner = columns[vote["winner"]]
    chosen = str(winner.get("answer") or "").strip()
    out = []
    for position, other in columns.items():
        rejected = str(other.get("answer") or "").strip()
        if position == vote["winner"] or not chosen or not rejected or rejected == chosen:
            continue
        out.append(
            {
                "prompt": vote.get("prompt", ""),
                "image": f"{IMAGES}/{image}" if image else "",
                "chosen": chosen,
                "rejected": rejected,
                "id": f"{vote.get('vote', '')}-{position}",
                "base_model": vote["board"],
                "chosen_adapter": winner["adapter"],
                "rejected_adapter": other["adapter"],
            }
        )
    return out


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows it (no second copy on disk), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)

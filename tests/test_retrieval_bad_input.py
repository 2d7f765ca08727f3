"""Bad input never aborts a build or damages an index: broken files, bad paths, another model,
a crash mid-write, concurrent writers and readers."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mmdemo.config import Settings
from mmdemo.errors import BadInputError
from mmdemo.images import ImageLimits
from mmdemo.models.manager import LoadContext, LoadedModel, ModelManager
from mmdemo.retrieval import IndexService, Query, RetrievalConfig
from mmdemo.retrieval.embed import EmbedConfig
from mmdemo.retrieval.identity import IndexModelMismatchError
from tests.retrieval_helpers import png_header_only, truncated_jpeg, write_photos

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(isolated_settings: Settings, shared_manager: ModelManager) -> IndexService:
    return IndexService(isolated_settings, shared_manager)


# file name -> (how to make it, words expected in the reason it is skipped)
BAD_FILES = {
    "empty.jpg": (lambda p: p.write_bytes(b""), "empty file"),
    "notes.png": (lambda p: p.write_text("just some text"), "not an image"),
    "cut.jpg": (lambda p: p.write_bytes(truncated_jpeg()), "truncated"),
    "bomb.png": (lambda p: p.write_bytes(png_header_only(40_000, 40_000)), "image too large"),
    "folder.jpg": (lambda p: p.mkdir(), None),  # a folder named like an image is walked into
    "gone.jpg": (lambda p: p.symlink_to(p.parent / "nowhere.jpg"), "cannot read file"),
}


def test_broken_files_are_skipped_and_listed(service: IndexService, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    good = write_photos(folder, ("cat", "rocket"))
    for name, (make, _) in BAD_FILES.items():
        make(folder / name)
    (folder / "readme.txt").write_text("ignored: not an image type")
    report = service.build("mixed", [folder])
    assert report.added == len(good) and report.total == len(good)
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    for name, (_, words) in BAD_FILES.items():
        if words is None:
            assert name not in reasons
        else:
            assert words in reasons[name], (name, reasons.get(name))
    assert report.ignored == 1
    assert (
        service.search("mixed", Query(image=str(good["cat"])), k=1).hits[0].item.name == "cat.jpg"
    )


def test_a_big_photo_is_decoded_small_and_indexed(service: IndexService, tmp_path: Path) -> None:
    from PIL import Image

    from tests.retrieval_helpers import photo_array

    big = tmp_path / "big.jpg"
    Image.fromarray(photo_array("astronaut")).resize((6000, 4000)).save(big, quality=80)
    report = service.build("big", [big])
    assert report.added == 1
    item = service.items("big")[0]
    assert (item.width, item.height) == (6000, 4000)


def test_over_the_byte_limit_is_skipped(
    isolated_settings: Settings, shared_manager: ModelManager, tmp_path: Path
) -> None:
    paths = write_photos(tmp_path / "p", ("cat", "coffee"))
    limits = ImageLimits(max_bytes=paths["cat"].stat().st_size - 1)
    config = RetrievalConfig(embed=EmbedConfig(limits=limits))
    report = IndexService(isolated_settings, shared_manager, config).build("lim", [tmp_path / "p"])
    skipped = {Path(s.path).name: s.reason for s in report.skipped}
    assert "file too large" in skipped["cat.jpg"]


def test_unreadable_subfolder_is_listed_not_fatal(
    service: IndexService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "tree"
    write_photos(folder, ("cat",))
    locked = folder / "locked"
    write_photos(locked, ("rocket",))
    real_scandir = os.scandir

    def scandir(path: object = ".") -> object:  # what a folder without read permission does
        if Path(str(path)) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = service.build("tree", [folder])
    assert report.added == 1
    assert any("folder not readable" in s.reason and "locked" in s.path for s in report.skipped)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: [tmp / "no-such-folder"], "does not exist"),
        (lambda tmp: [], "no folder or files given"),
        (lambda tmp: [str(tmp / "empty")], "no image files found"),
        (lambda tmp: ["  "], "no folder or files given"),
    ],
)
def test_bad_sources_fail_with_a_fix(service: IndexService, tmp_path: Path, make, message) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    with pytest.raises(BadInputError, match=message) as info:
        service.build("x", make(tmp_path))
    assert info.value.fix
    assert not service.store.exists("x"), "a failed build must not leave an index"


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "x" * 65, "spaces here"])
def test_index_names_cannot_escape_the_folder(
    service: IndexService, tmp_path: Path, name: str
) -> None:
    with pytest.raises(BadInputError, match="not a valid index name"):
        service.build(name, [tmp_path])


def _clip_variant(perturb: bool):
    """A clip loader giving the tiny model, either changed (another model) or only relabelled."""

    def load(ctx: LoadContext) -> LoadedModel:
        import torch

        from mmdemo.models.backends.clip import load as load_clip

        loaded = load_clip(ctx)
        bundle = loaded.handle
        if perturb:
            torch.manual_seed(1)
            with torch.no_grad():
                for p in bundle.model.parameters():
                    p.add_(torch.randn_like(p) * 0.5)
        bundle.fingerprint = "variant-" + str(perturb)  # e.g. the same weights in bfloat16
        return loaded

    return load


def test_another_model_is_refused_and_the_same_weights_accepted(
    isolated_settings: Settings, shared_manager: ModelManager, tmp_path: Path
) -> None:
    photos = write_photos(tmp_path / "p", ("cat", "rocket"))
    IndexService(isolated_settings, shared_manager).build("p", [photos["cat"]])

    other = ModelManager(isolated_settings, loaders={"clip": _clip_variant(perturb=True)})
    service = IndexService(isolated_settings, other)
    for action in (
        lambda: service.search("p", Query(text="a cat")),
        lambda: service.search("p", Query(image=str(photos["cat"]))),
        lambda: service.add("p", [photos["rocket"]]),
    ):
        with pytest.raises(
            IndexModelMismatchError, match="built with CLIP model 'tiny:clip'"
        ) as info:
            action()
        assert "build a new index" in info.value.fix
    assert service.info("p").count == 1, "nothing was added"

    same = ModelManager(isolated_settings, loaders={"clip": _clip_variant(perturb=False)})
    relabelled = IndexService(isolated_settings, same)
    assert relabelled.add("p", [photos["rocket"]]).added == 1


CRASH = r"""
import os, sys
from pathlib import Path
from mmdemo.config import Settings
from mmdemo.retrieval import store
from mmdemo.retrieval import IndexService
from mmdemo.models.manager import ModelManager

real = store.atomic_write
def dying(path, write):
    if path.name == "manifest.json":  # die while writing the commit point
        with open(path.with_name(".tmp-manifest.json-dead"), "wb") as f:
            f.write(b'{"format": 1, "na')
        os._exit(17)
    real(path, write)
store.atomic_write = dying
settings = Settings(profile="tiny", home=sys.argv[1], device="cpu")
IndexService(settings, ModelManager(settings)).add("crash", [sys.argv[2]])
"""


def test_a_crash_mid_write_leaves_the_old_index_intact(
    isolated_settings: Settings, shared_manager: ModelManager, tmp_path: Path
) -> None:
    photos = write_photos(tmp_path / "p", ("cat", "rocket", "coffee"))
    service = IndexService(isolated_settings, shared_manager)
    service.build("crash", [photos["cat"]])
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMDEMO_")}
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(isolated_settings.home), str(tmp_path / "p")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 17, proc.stderr
    directory = service.store.directory("crash")
    assert any(p.name.startswith(".tmp-") for p in directory.iterdir()), "the crash left debris"

    after = IndexService(isolated_settings, shared_manager)
    assert [it.name for it in after.items("crash")] == ["cat.jpg"]
    assert (
        after.search("crash", Query(image=str(photos["cat"])), k=1).hits[0].item.name == "cat.jpg"
    )
    report = after.add("crash", [tmp_path / "p"])
    assert report.added == 2 and report.total == 3
    named = {
        f"{r.name}{ext}"
        for r in after.snapshot("crash").manifest.segments
        for ext in (".npy", ".json")
    }
    leftovers = {p.name for p in directory.iterdir()} - named - {"manifest.json"}
    assert leftovers == set(), "debris of the crash is cleaned by the next write"


def test_concurrent_adds_and_searches_lose_nothing(
    isolated_settings: Settings, shared_manager: ModelManager, tmp_path: Path
) -> None:
    photos = write_photos(tmp_path / "p")
    names = sorted(photos)
    config = RetrievalConfig(chunk_rows=1, embed=EmbedConfig(batch_size=1, workers=1))
    writers = [IndexService(isolated_settings, shared_manager, config) for _ in range(2)]
    reader = IndexService(isolated_settings, shared_manager)  # like another process
    writers[0].build("busy", [photos[names[0]]])
    errors: list[BaseException] = []
    seen: list[int] = []
    stop = threading.Event()

    def search() -> None:
        try:
            while not stop.is_set():
                result = reader.search("busy", Query(image=str(photos[names[0]])), k=50)
                assert result.hits[0].item.name == photos[names[0]].name
                assert len(result.hits) == result.searched
                seen.append(result.searched)
        except BaseException as exc:
            errors.append(exc)

    def add(service: IndexService, part: list[str]) -> None:
        try:
            service.add("busy", [photos[n] for n in part])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(2)]
    threads += [
        threading.Thread(target=add, args=(writers[0], names[1::2])),
        threading.Thread(target=add, args=(writers[1], names[2::2])),
    ]
    for t in threads:
        t.start()
    for t in threads[2:]:
        t.join(timeout=120)
    stop.set()
    for t in threads[:2]:
        t.join(timeout=60)
    assert not errors, errors
    final = IndexService(isolated_settings, shared_manager)
    assert sorted(it.name for it in final.items("busy")) == sorted(p.name for p in photos.values())
    assert seen and min(seen) >= 1 and max(seen) <= len(photos)

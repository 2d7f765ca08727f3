"""`python -m mmdemo index ...`: the same flows as the tab, with exit codes and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdemo.cli import main
from mmdemo.config import Settings
from tests.retrieval_helpers import write_photos


@pytest.fixture
def cli(isolated_settings: Settings, capsys: pytest.CaptureFixture[str]):
    base = ["--profile", "tiny", "--home", str(isolated_settings.home), "index"]

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*base, *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_build_search_add_remove_info_delete(cli, tmp_path: Path) -> None:
    photos = write_photos(tmp_path / "p", ("cat", "rocket", "coffee"))
    (tmp_path / "p" / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    code, out, _ = cli("build", "pics", str(tmp_path / "p"), "--quiet")
    assert code == 0 and "added 3" in out and "unreadable skipped 1" in out
    assert "broken.jpg" in out and "not an image" in out

    code, out, _ = cli("search", "pics", "--image", str(photos["rocket"]), "-k", "2", "--json")
    hits = json.loads(out)["hits"]
    assert code == 0 and hits[0]["name"] == "rocket.jpg" and hits[0]["score"] > 0.99
    rocket_id = hits[0]["id"]

    more = write_photos(tmp_path / "more", ("horse",))
    code, out, _ = cli("add", "pics", str(more["horse"]), str(tmp_path / "p"), "--quiet")
    assert code == 0 and "added 1" in out and "unchanged 3" in out

    code, out, _ = cli("remove", "pics", str(rocket_id), str(photos["cat"]), "/not/there.jpg")
    assert code == 1 and "removed 2" in out and "not in the index: /not/there.jpg" in out

    code, out, _ = cli("info", "--json")
    (info,) = json.loads(out)
    assert info["name"] == "pics" and info["count"] == 2 and info["model_id"] == "tiny:clip"

    code, out, _ = cli("search", "pics", "--text", "a horse", "-k", "5")
    assert code == 0 and "'a horse' in pics (2 images, exact" in out
    assert out.count(".jpg") + out.count(".png") == 2 * 2  # name and path of each hit

    code, _, err = cli("delete", "pics")
    assert code == 2 and "pass --yes" in err
    code, out, _ = cli("delete", "pics", "--yes")
    assert code == 0 and "deleted" in out
    code, _, err = cli("search", "pics", "--text", "x")
    assert code == 2 and "no index named 'pics'" in err


def test_build_refuses_an_existing_index_and_bad_paths(cli, tmp_path: Path) -> None:
    write_photos(tmp_path / "p", ("cat",))
    assert cli("build", "one", str(tmp_path / "p"), "--quiet")[0] == 0
    code, _, err = cli("build", "one", str(tmp_path / "p"), "--quiet")
    assert code == 2 and "already exists" in err and "--replace" in err
    code, out, _ = cli("build", "one", str(tmp_path / "p"), "--replace", "--quiet")
    assert code == 0 and "added 1" in out
    code, _, err = cli("build", "two", str(tmp_path / "nowhere"))
    assert code == 2 and "does not exist" in err


def test_classify_prints_probabilities(cli, tmp_path: Path) -> None:
    photos = write_photos(tmp_path, ("cat",))
    code, out, _ = cli("classify", str(photos["cat"]), "cat, dog, rocket")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 3
    total = sum(float(line.split("%")[0]) for line in lines)
    assert total == pytest.approx(100, abs=0.1)
    code, _, err = cli("classify", str(photos["cat"]), "cat")
    assert code == 2 and "at least two labels" in err

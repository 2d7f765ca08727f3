"""AdapterStore: discovery with metadata, safe install from folders and zips, delete."""

from __future__ import annotations

import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from mmdemo.errors import AdapterError, BadInputError
from mmdemo.models.adapters import BUILTIN_DIR, AdapterStore, read_adapter

PIRATE = BUILTIN_DIR / "pirate"


@pytest.fixture
def store(isolated_settings) -> AdapterStore:
    return AdapterStore(isolated_settings)


def zip_folder(folder: Path, out: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for f in folder.iterdir():
            zf.write(f, prefix + f.name)
    return out


def test_builtin_demo_adapters_are_listed_with_their_metadata(store: AdapterStore) -> None:
    infos = {a.name: a for a in store.list()}
    assert {"color-namer", "pirate"} <= set(infos)
    pirate = infos["pirate"]
    assert pirate.builtin and pirate.is_lora and pirate.rank == 8
    assert pirate.base_model_type == "idefics3"
    assert pirate.metrics["count"] > 0 and 0.0 < pirate.metrics["overall"] <= 1.0
    assert "pirate" in pirate.dataset and pirate.label().startswith("lora")


def test_install_from_folder_and_zip_then_delete(store: AdapterStore, tmp_path: Path) -> None:
    info = store.install(PIRATE, "my-pirate")
    assert info.name == "my-pirate" and not info.builtin
    assert (store.root / "my-pirate" / "adapter_model.safetensors").is_file()
    archive = zip_folder(PIRATE, tmp_path / "zipped.zip", prefix="zipped/")
    assert store.install(archive).name == "zipped"  # name from the zip, top folder unwrapped
    with pytest.raises(AdapterError, match="already exists"):
        store.install(archive)
    store.delete("my-pirate")
    assert "my-pirate" not in store.names()
    with pytest.raises(AdapterError, match="cannot be deleted"):
        store.delete("pirate")


@pytest.mark.parametrize(
    ("member", "needle"),
    [
        ("../evil/adapter_config.json", "outside its folder"),
        ("/abs/adapter_config.json", "outside its folder"),
    ],
)
def test_zip_with_escaping_paths_is_refused(
    store: AdapterStore, tmp_path: Path, member: str, needle: str
) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, "{}")
        zf.writestr("adapter_model.safetensors", b"x")
    before = store.names()
    with pytest.raises(BadInputError, match=needle):
        store.install(archive)
    assert not (tmp_path / "evil").exists() and not Path("/abs").exists()
    assert store.names() == before
    assert list(store.root.iterdir()) == [], "no staging folder is left behind"


def test_zip_with_symlink_is_refused(store: AdapterStore, tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("adapter_config.json")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BadInputError, match="symbolic link"):
        store.install(archive)


def test_pickle_weights_are_refused_and_nothing_is_kept(
    store: AdapterStore, tmp_path: Path
) -> None:
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(PIRATE / "adapter_config.json", folder)
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(AdapterError, match="pickle"):
        store.install(folder)
    assert "pickled" not in store.names()
    assert not any(p.name.startswith(".pickled") for p in store.root.iterdir())


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"adapter_model.safetensors": b"x"}, "no adapter_config.json"),
        ({"adapter_config.json": b"{}"}, "no adapter_model.safetensors"),
        (
            {"adapter_config.json": b"{not json", "adapter_model.safetensors": b"x"},
            "not valid JSON",
        ),
        ({"adapter_config.json": b"{}", "adapter_model.safetensors": b"x"}, "no peft_type"),
    ],
)
def test_incomplete_adapters_are_refused(
    store: AdapterStore, tmp_path: Path, files: dict, needle: str
) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with pytest.raises(AdapterError, match=needle):
        store.install(folder)


@pytest.mark.parametrize("name", ["base", "../up", "a b", "", "x" * 80, "lora", "ia3"])
def test_bad_names_are_refused(store: AdapterStore, name: str) -> None:
    with pytest.raises(AdapterError):
        store.install(PIRATE, name)


@pytest.mark.parametrize("name", ["half", "cuda", "to", "forward"])
def test_names_peft_could_not_load_are_refused_up_front(store: AdapterStore, name: str) -> None:
    """PEFT keeps an adapter's layers in a torch ModuleDict under its name: a name that is a
    module attribute installs, then fails at every load. It is refused at install instead."""
    before = store.names()
    with pytest.raises(AdapterError, match="torch module attribute"):
        store.install(PIRATE, name)
    assert store.names() == before
    assert store.install(PIRATE, f"{name}-2").name == f"{name}-2"


def test_not_a_zip_is_refused(store: AdapterStore, tmp_path: Path) -> None:
    fake = tmp_path / "fake.zip"
    fake.write_text("this is not a zip")
    with pytest.raises(BadInputError, match="not a readable zip"):
        store.install(fake)


def test_uploaded_adapter_without_metadata_gets_some(store: AdapterStore, tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    shutil.copytree(PIRATE, folder)
    os.remove(folder / "mmdemo.json")
    info = store.install(folder)
    meta = json.loads((info.path / "mmdemo.json").read_text())
    assert meta["method"] == "lora" and meta["created"]
    assert read_adapter(info.path).description == "uploaded"

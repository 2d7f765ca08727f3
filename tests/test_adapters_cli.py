"""``python -m mmdemo adapters merge`` and ``adapters export-merged``: the merge and the merged
export a user gets from the chat tab and the endpoints, from the command line, with clear
refusals (exit 2) for what cannot work. Parents: the built-in demo adapters of the tiny VLM."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from safetensors.torch import load_file

from mmdemo.cli import main
from mmdemo.models.adapters import BUILTIN_DIR


@pytest.fixture(scope="module")
def cli(tiny_settings, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The CLI's arguments up to ``adapters``, over an empty data folder of its own."""
    home = tmp_path_factory.mktemp("adapters-cli")
    (home / "models").mkdir()
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    return ["--profile", "tiny", "--home", str(home), "adapters"]


def listed(cli: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    assert main([*cli, "list", "--json"]) == 0
    return {a["name"]: a for a in json.loads(capsys.readouterr().out)}


def weights_of(entry: dict, home_adapters: Path) -> dict:
    return load_file(str(home_adapters / entry["name"] / "adapter_model.safetensors"))


def test_merge_adds_an_adapter_the_server_lists(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [*cli, "merge", "pirate", "color-namer", "--weights", "0.5", "0.5", "--name", "halves"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "merged pirate, color-namer -> halves" in out and "pirate 0.5, color-namer 0.5" in out
    assert main([*cli, "merge", "pirate", "color-namer", "--method", "ties", "--density", "0.3",
                 "--name", "tied", "--json"]) == 0  # fmt: skip
    tied = json.loads(capsys.readouterr().out)
    assert tied["name"] == "tied" and tied["method"] == "merge (ties)"
    assert "density 0.3" in tied["description"] and "pirate 1, color-namer 1" in tied["description"]

    entries = listed(cli, capsys)
    halves = entries["halves"]
    assert halves["source"] == "merge:linear(pirate, color-namer)"
    assert halves["base_model_type"] == "idefics3" and halves["peft_type"] == "LORA"
    store = Path(cli[3]) / "adapters"
    half, tied_w = weights_of(halves, store), weights_of(entries["tied"], store)
    pirate = load_file(str(BUILTIN_DIR / "pirate" / "adapter_model.safetensors"))
    assert half.keys() == pirate.keys()
    assert any(not half[k].equal(tied_w[k]) for k in half), "two methods, two adapters"


def scaling(folder: Path) -> float:
    """A LoRA adapter's alpha / r, from its PEFT config."""
    config = json.loads((folder / "adapter_config.json").read_text())
    return config["lora_alpha"] / config["r"]


def test_a_weight_1_0_merge_is_the_first_parent(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Linear with weights 1 and 0 keeps the first parent's weight update, scaling * B @ A,
    exactly (the matrices PEFT stores are split and scaled differently; their product is not),
    so the weights reach the flow in the order given."""
    assert main([*cli, "merge", "pirate", "color-namer", "--weights", "1", "0", "--name", "p"]) == 0
    capsys.readouterr()
    folder = Path(cli[3]) / "adapters" / "p"
    merged = load_file(str(folder / "adapter_model.safetensors"))
    pirate = load_file(str(BUILTIN_DIR / "pirate" / "adapter_model.safetensors"))
    ours, theirs_scale = scaling(folder), scaling(BUILTIN_DIR / "pirate")
    a_keys = [k for k in pirate if "lora_A" in k]
    assert a_keys
    for a_key in a_keys:
        b_key = a_key.replace("lora_A", "lora_B")
        mine = ours * merged[b_key].float() @ merged[a_key].float()
        theirs = theirs_scale * pirate[b_key].float() @ pirate[a_key].float()
        assert mine.allclose(theirs, atol=1e-5), a_key


def test_merges_that_cannot_work_exit_2_with_the_reason(
    cli: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # an adapter made for another base model (its metadata says llava)
    other = Path(cli[3]) / "adapters" / "other-base"
    shutil.copytree(BUILTIN_DIR / "pirate", other)
    meta = json.loads((other / "mmdemo.json").read_text())
    (other / "mmdemo.json").write_text(json.dumps({**meta, "base_model_type": "llava"}))
    before = set(listed(cli, capsys))
    cases = [
        (["pirate", "nope"], [], "no adapter called 'nope'"),
        (["pirate", "color-namer"], ["--name", "pirate"], "'pirate' already exists"),
        (["pirate", "other-base"], ["--name", "x"], "trained for a llava model"),
        (["pirate", "color-namer"], ["--weights", "1"], "1 weight(s) for 2 adapters"),
        (["pirate"], [], "2 to 8 adapters"),
        (["pirate", "color-namer"], ["--method", "ties", "--density", "1.5"], "density 1.5"),
    ]
    for names, extra, why in cases:
        assert main([*cli, "merge", *names, *extra]) == 2, why
        assert why in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse: not a method
        main([*cli, "merge", "pirate", "color-namer", "--method", "svd"])
    assert exc.value.code == 2 and "invalid choice: 'svd'" in capsys.readouterr().err
    assert set(listed(cli, capsys)) == before, "nothing was added"
    shutil.rmtree(other)


def test_export_merged_writes_the_zip_named(
    cli: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exports" / "pirate-model.zip"
    out.parent.mkdir()
    assert main([*cli, "export-merged", "pirate", "--out", str(out)]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["pirate-model.zip"], "no leftovers"
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("pirate-merged/mmdemo.json"))
    assert {"pirate-merged/model.safetensors", "pirate-merged/config.json"} <= names
    assert "pirate-merged/adapter_config.json" not in names, "a plain model, not an adapter"
    assert meta["adapter"] == "pirate" and meta["base_model"] == "tiny:smolvlm"

    # refused: an existing file (unless --force), base, an unknown adapter, not a zip
    stamp = out.stat().st_mtime_ns
    assert main([*cli, "export-merged", "pirate", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.stat().st_mtime_ns == stamp
    for name, target, why in (
        ("base", tmp_path / "b.zip", "base has no adapter"),
        ("nope", tmp_path / "n.zip", "nope"),
        ("pirate", tmp_path / "p.tar", "is not a .zip file"),
        ("pirate", tmp_path / "missing" / "p.zip", "does not exist"),
    ):
        assert main([*cli, "export-merged", name, "--out", str(target)]) == 2, why
        assert why in capsys.readouterr().err
        assert not target.exists()
    assert main([*cli, "export-merged", "color-namer", "--out", str(out), "--force"]) == 0
    with zipfile.ZipFile(out) as zf:
        assert json.loads(zf.read("color-namer-merged/mmdemo.json"))["adapter"] == "color-namer"
    assert [p.name for p in out.parent.iterdir()] == ["pirate-model.zip"]

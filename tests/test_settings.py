"""Settings: env and TOML parsing, profile defaults, validation before anything loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdemo.config import Settings, cuda_available
from mmdemo.errors import SettingsError
from mmdemo.profiles import BACKENDS, PROFILES


def test_defaults_are_valid_and_auto_follows_the_machine() -> None:
    s = Settings.load(environ={})
    assert s.profile == "auto"
    assert s.resolved_profile == ("gpu" if cuda_available() else "cpu")
    for backend in BACKENDS:
        assert s.model_id(backend) == PROFILES[s.resolved_profile][backend]


def test_env_values_are_typed_and_override_profile_ids(tmp_path: Path) -> None:
    env = {
        "MMDEMO_PROFILE": "tiny",
        "MMDEMO_PORT": "8123",
        "MMDEMO_SHARE": "yes",
        "MMDEMO_HOME": str(tmp_path),
        "MMDEMO_VLM": "tiny:qwen2vl",
    }
    s = Settings.load(environ=env)
    assert (s.profile, s.port, s.share, s.home) == ("tiny", 8123, True, tmp_path)
    assert s.model_id("vlm") == "tiny:qwen2vl"
    assert s.model_id("clip") == PROFILES["tiny"]["clip"]
    assert s.adapters_dir == tmp_path / "adapters"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MMDEMO_PROFILE": "huge"}, "tiny, cpu, gpu"),
        ({"MMDEMO_PORT": "abc"}, "MMDEMO_PORT"),
        ({"MMDEMO_PORT": "70000"}, "port=70000"),
        ({"MMDEMO_SHARE": "perhaps"}, "MMDEMO_SHARE"),
        ({"MMDEMO_DEVICE": "tpu"}, "device 'tpu'"),
        ({"MMDEMO_DTYPE": "int3"}, "dtype 'int3'"),
        ({"MMDEMO_MAX_ADAPTERS": "0"}, "max_adapters"),
        ({"MMDEMO_IMAGE_SPLITTING": "maybe"}, "image_splitting"),
        ({"MMDEMO_VLM": " padded "}, "surrounding spaces"),
    ],
)
def test_bad_values_fail_with_a_message_naming_them(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.load(environ=env)
    assert needle in str(err.value)


def test_cuda_index_is_a_valid_device_name() -> None:
    assert Settings(device="cuda:1").device == "cuda:1"


def test_toml_file_then_env_then_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "mmdemo.toml"
    cfg.write_text('profile = "cpu"\nport = 9000\n[models]\nclip = "ViT-B-16/openai"\n')
    s = Settings.load(environ={"MMDEMO_CONFIG": str(cfg), "MMDEMO_PORT": "9001"})
    assert (s.profile, s.port, s.model_id("clip")) == ("cpu", 9001, "ViT-B-16/openai")
    s = Settings.load(environ={}, config_file=cfg, port=9002)
    assert s.port == 9002


def test_toml_unknown_key_and_bad_syntax_are_named(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('profil = "cpu"\n')
    with pytest.raises(SettingsError, match="profil"):
        Settings.load(environ={}, config_file=cfg)
    cfg.write_text("profile = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Settings.load(environ={}, config_file=cfg)
    with pytest.raises(SettingsError, match="does not exist"):
        Settings.load(environ={}, config_file=tmp_path / "missing.toml")


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown backend"):
        Settings(profile="tiny").model_id("radar")


def test_replace_validates_again() -> None:
    s = Settings(profile="tiny")
    with pytest.raises(SettingsError):
        s.replace(concurrency=0)

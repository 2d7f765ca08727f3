"""Shared fixtures: tiny models built once per session, an in-process app, a headless browser.

Tiny builds are cached in ``MMDEMO_TEST_HOME`` (default ``~/.cache/mmdemo-test``) so a second
run reuses them; they rebuild themselves when their version changes.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Tests never read the developer's own MMDEMO_* settings.
for _key in [k for k in os.environ if k.startswith("MMDEMO_") and k != "MMDEMO_TEST_HOME"]:
    if _key not in ("MMDEMO_REQUIRE_BROWSER", "MMDEMO_UPDATE_SCREENSHOTS", "MMDEMO_CI"):
        del os.environ[_key]
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from mmdemo.config import Settings  # noqa: E402
from mmdemo.models.manager import ModelManager  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[1]


# modules whose tests take longest (pytest's slowest-durations list): under pytest-xdist
# they start first, so no worker is left with one of them at the end while the other idles
LONG_MODULES = (
    "test_finetune_bakeoff",
    "test_video_real",
    "test_finetune_app",
    "test_finetune_service",
    "test_finetune_processes",
    "test_sessions",
    "test_crash_safety",
    "test_voice_real",
    "test_loop",
    "test_ov_decode",
    "test_chat_ui",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker sorts alike (xdist checks)
        rank = {name: i for i, name in enumerate(LONG_MODULES)}
        items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], 99))
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def test_home() -> Path:
    """The tests' data folder. Under pytest-xdist each worker gets its own (adapters, data
    sets, indexes one worker's tests write are not another's), all sharing one models folder:
    tiny builds are locked across processes, traced steps written atomically."""
    home = Path(
        os.environ.get("MMDEMO_TEST_HOME", Path.home() / ".cache" / "mmdemo-test")
    ).expanduser()
    (home / "models").mkdir(parents=True, exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return home
    mine = home / "workers" / worker
    mine.mkdir(parents=True, exist_ok=True)
    if not (mine / "models").is_symlink():
        (mine / "models").symlink_to(home / "models")
    return mine


@pytest.fixture(scope="session")
def tiny_settings(test_home: Path) -> Settings:
    """Tiny profile on the CPU, all tiny models built (once, cached across runs)."""
    from mmdemo.models.tiny import build_all

    settings = Settings(profile="tiny", home=test_home, device="cpu")
    build_all(settings.models_dir)
    return settings


@pytest.fixture(scope="session")
def family_builds(tiny_settings: Settings) -> dict[str, str]:
    """VLM family key -> its tiny build's model id, every build made (once, cached)."""
    from mmdemo.models.families import FAMILIES
    from mmdemo.models.tiny import build_all

    families = {f.key: f.tiny for f in FAMILIES.values() if f.tiny}
    build_all(tiny_settings.models_dir, tuple(families.values()))
    return {key: f"tiny:{name}" for key, name in families.items()}


@pytest.fixture
def isolated_settings(tmp_path: Path, tiny_settings: Settings) -> Settings:
    """Tiny settings with a fresh, empty data folder that shares the tiny model builds."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    return tiny_settings.replace(home=home)


@pytest.fixture(scope="session")
def shared_manager(tiny_settings: Settings) -> Iterator[ModelManager]:
    """One manager for tests that only read models (loading each tiny model once)."""
    manager = ModelManager(tiny_settings)
    yield manager
    manager.unload_all()


@pytest.fixture
def manager(tiny_settings: Settings) -> Iterator[ModelManager]:
    manager = ModelManager(tiny_settings)
    yield manager
    manager.unload_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The whole app served in-process on a free localhost port, ``/v1`` included; yields
    the ``App`` (``.demo`` the Blocks, ``.services``, ``.manager``).

    The app gets its own data folder (sharing the tiny builds) so tests that add adapters or
    indexes through the UI do not touch other tests' data.
    """
    from mmdemo.ui.app import CSS, build_app, theme

    home = tmp_path_factory.mktemp("app-home")
    (home / "models").mkdir()
    (home / "models" / "tiny").symlink_to(tiny_settings.models_dir / "tiny")
    settings = tiny_settings.replace(home=home)
    built = build_app(settings)
    built.demo.queue(default_concurrency_limit=settings.concurrency)
    built.launch(
        prevent_thread_lock=True,
        server_name="127.0.0.1",
        server_port=free_port(),
        theme=theme(),
        css=CSS,
        quiet=True,
        show_error=True,
    )
    yield built
    built.close()


@pytest.fixture(scope="session")
def dylora(app: Any, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A DyLoRA adapter of rank 8 (random weights, so every rank answers differently) in the
    app's store, its training's score at rank 2 in its metadata."""
    from mmdemo.models.tiny.vlm import random_model, smolvlm_parts
    from tests.helpers import make_adapter

    store = app.services.chat.store
    if "dy" not in store.names():
        made = tmp_path_factory.mktemp("dylora") / "dy"
        model = random_model(smolvlm_parts()[0])
        scores = {"2": {"overall": 0.41}}
        store.install(
            make_adapter(model, made, seed=11, rank=8, method="dylora", rank_scores=scores), "dy"
        )
    return "dy"


@pytest.fixture(scope="session")
def app_url(app: Any) -> str:
    return app.demo.local_url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("MMDEMO_REQUIRE_BROWSER") == "1":
            pytest.fail(
                f"{CHROMIUM} is missing; install Debian's chromium (apt-get install chromium)"
            )
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a loaded 2-core CI machine needs more than 5 s
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, app_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(app_url)
    page.wait_for_selector("#app-title", state="visible")
    yield page
    context.close()


def screenshot_dir(tmp_path: Path) -> Path:
    """docs/screenshots when MMDEMO_UPDATE_SCREENSHOTS=1 (README pictures), else tmp."""
    if os.environ.get("MMDEMO_UPDATE_SCREENSHOTS") == "1":
        out = REPO / "docs" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        return out
    return tmp_path


@pytest.fixture(scope="session")
def librivox() -> list[tuple[Path, str]]:
    """Real recorded speech: (16 kHz WAV, transcript) pairs from Debian pocketsphinx-testdata.

    Skips where the package is missing, except in CI (MMDEMO_CI=1), where it fails.
    """
    from mmdemo.bench.voice import librivox_clips
    from mmdemo.errors import MMDemoError

    try:
        return librivox_clips()
    except MMDemoError as exc:
        if os.environ.get("MMDEMO_CI") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture
def one_thread() -> Any:
    """One torch thread for the test (tiny models train fastest so, and do not fight other
    tests for cores); modules opt in with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

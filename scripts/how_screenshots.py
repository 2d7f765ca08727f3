"""README screenshots of the How it works tab's Anatomy, Few-shot and Audio tokens views.

Serves the app on the tiny profile (random weights, built offline and cached like the tests'
builds), drives headless Debian Chromium, presses each view's buttons, waits for the results
and saves docs/screenshots/how-anatomy.png, how-fewshot.png and how-audio.png (palette PNGs,
a few hundred KB). The Contrastive learning picture (how.png) comes from the browser test
(MMDEMO_UPDATE_SCREENSHOTS=1). Needs Debian's chromium and pocketsphinx-testdata (two
LibriVox clips, compared). Run: python scripts/how_screenshots.py [anatomy] [fewshot] [audio]
(no names: all three).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
OUT = REPO / "docs" / "screenshots"
CAT = REPO / "assets" / "images" / "cat.jpg"
TIMEOUT_MS = 300_000  # a busy 2-core machine


def shrink(path: Path, colors: int = 256) -> None:
    """Rewrite a screenshot as an optimised palette PNG (UI pictures lose nothing visible)."""
    from PIL import Image

    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def save(page: Any, name: str) -> None:
    path = OUT / name
    page.mouse.move(0, 0)  # no hover or focus colour on the last button pressed
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.wait_for_function("document.getAnimations().every(a => a.playState !== 'running')")
    page.screenshot(path=str(path), full_page=True)
    shrink(path)
    print(f"saved {path} ({path.stat().st_size // 1024} KB)")


def no_error(page: Any) -> None:
    """Fail rather than save a picture of an error toast."""
    toasts = page.locator(".toast-body")
    if toasts.count():
        raise RuntimeError(f"the page shows an error: {toasts.first.inner_text()}")


def anatomy(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Anatomy").click()
    page.locator("#how-parts").click()
    expect(page.locator("#how-parts-table")).to_contain_text("vision encoder")
    page.locator("#how-image input[type=file]").set_input_files(str(CAT))
    expect(page.locator("#how-image")).to_contain_text("cat.jpg")
    page.locator("#how-tokens").click()
    expect(page.locator("#how-tokens-info")).to_contain_text("image tokens")
    expect(page.locator("#how-grid img")).to_be_visible()
    page.locator("#how-plan").click()
    expect(page.locator("#how-plan-info")).to_contain_text("trainable of")
    no_error(page)
    save(page, "how-anatomy.png")


def fewshot(page: Any) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Few-shot").click()
    page.locator("#how-shape-samples input").check()
    page.locator("#how-fewshot-run").click()
    expect(page.locator("#how-fewshot-info")).to_contain_text("zero-shot")
    expect(page.locator("#how-fewshot")).to_contain_text("%")
    no_error(page)
    save(page, "how-fewshot.png")


def audio(page: Any, clip: Path, other: Path) -> None:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Audio tokens").click()
    page.locator("#how-speech input[type=file]").set_input_files(str(clip))
    expect(page.locator("#how-speech audio").first).to_be_attached()
    page.locator("#how-speech-2 input[type=file]").set_input_files(str(other))
    expect(page.locator("#how-speech-2 audio").first).to_be_attached()
    page.locator("#how-units").click()
    expect(page.locator("#how-units-info")).to_contain_text("Unit edit distance")
    expect(page.locator("#how-units-out textarea")).not_to_have_value("")
    expect(page.locator("#how-units-out-2 textarea")).not_to_have_value("")
    no_error(page)
    save(page, "how-audio.png")


def main(views: list[str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    from mmdemo.bench.voice import librivox_clips
    from mmdemo.config import Settings
    from mmdemo.models.tiny import build_all
    from mmdemo.ui.app import CSS, build_app, theme
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

    clip, other = (path for path, _ in librivox_clips()[:2])
    cache = Path(os.environ.get("MMDEMO_TEST_HOME", Path.home() / ".cache" / "mmdemo-test"))
    tiny = Settings(profile="tiny", home=cache.expanduser(), device="cpu")
    build_all(tiny.models_dir)  # cached: instant after the first run
    with tempfile.TemporaryDirectory() as home:  # the app's own data, the tiny builds shared
        (Path(home) / "models").mkdir()
        (Path(home) / "models" / "tiny").symlink_to(tiny.models_dir / "tiny")
        built = build_app(tiny.replace(home=Path(home)))
        built.demo.queue()
        built.launch(
            prevent_thread_lock=True,
            server_name="127.0.0.1",
            server_port=free_port(),
            theme=theme(),
            css=CSS,
            quiet=True,
        )
        try:
            expect.set_options(timeout=TIMEOUT_MS)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(built.demo.local_url)
                page.wait_for_selector("#app-title", state="visible")
                page.get_by_role("tab", name="How it works").click()
                if "anatomy" in views:
                    anatomy(page)
                if "fewshot" in views:
                    fewshot(page)
                if "audio" in views:
                    audio(page, clip, other)
                browser.close()
        finally:
            built.close()


if __name__ == "__main__":
    main(sys.argv[1:] or ["anatomy", "fewshot", "audio"])

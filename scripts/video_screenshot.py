"""README screenshot of the Video summary tab with the REAL embedded speech and text models.

The browser tests use the tiny profile (random-weight models transcribe and write gibberish);
this script serves the app with the cpu profile's embedded ASR and LLM (they work offline) and
tiny VLM/CLIP, uploads a video made from real material (scikit-image photos, LibriVox speech)
in headless Chromium, asks a question, and saves docs/screenshots/video.png.
Run: python scripts/video_screenshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    from mmdemo.bench.videogen import real_material
    from mmdemo.config import Settings
    from mmdemo.ui.app import CSS, create_ui, theme
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

    folder = Path(tempfile.mkdtemp(prefix="mmdemo-video-shot-"))
    video = real_material(folder / "sense-and-sensibility.webm")["path"]
    settings = Settings.load(profile="cpu", vlm="tiny:smolvlm", clip="tiny:clip", device="cpu")
    demo = create_ui(settings)
    demo.queue()
    demo.launch(
        prevent_thread_lock=True, server_port=free_port(), theme=theme(), css=CSS, quiet=True
    )
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(600_000)
            page.goto(demo.local_url)
            page.get_by_role("tab", name="Video summary").click()
            page.locator("#video-player input[type=file]").set_input_files(str(video))
            expect(page.locator("#video-status")).to_contain_text("Done.", timeout=600_000)
            page.locator("#video-chapters").get_by_test_id("cell-1-2").click()
            page.locator("#video-question textarea").fill(
                "What did John Dashwood have leisure to consider?"
            )
            page.locator("#video-ask").click()
            expect(page.locator("#video-answer")).to_contain_text("Cites", timeout=600_000)
            page.locator("#video-query textarea").fill("a cat")
            page.locator("#video-search").click()
            expect(page.locator("#video-hits img").first).to_be_visible(timeout=120_000)
            out = REPO / "docs" / "screenshots" / "video.png"
            page.screenshot(path=str(out), full_page=True)
            print(page.locator("#video-summary").inner_text())
            print(page.locator("#video-answer").inner_text())
            print(f"saved {out}")
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()

"""README screenshot of the Voice assistant with the REAL embedded speech models.

The browser tests use the tiny profile and a scripted answer (random-weight models speak
gibberish); this script serves the app with the cpu profile's embedded ASR, TTS and LLM (they
work offline) and tiny VLM/CLIP, uploads a LibriVox question in headless Chromium and saves
docs/screenshots/voice.png. Run: python scripts/voice_screenshot.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
CLIP = "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0870.wav"


def main() -> None:
    from playwright.sync_api import expect, sync_playwright

    from mmdemo.config import Settings
    from mmdemo.ui.app import CSS, create_ui, theme
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

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
            page.set_default_timeout(300_000)
            page.goto(demo.local_url)
            page.get_by_role("tab", name="Voice assistant").click()
            for turn in range(2):  # the first turn loads the models; show a warm one
                if turn:
                    page.locator("#voice-clear").click()
                    expect(page.locator("#voice-status")).to_contain_text("cleared")
                page.locator("#voice-input").get_by_label("Upload file").click()
                page.locator("#voice-input input[type=file]").set_input_files(CLIP)
                expect(page.locator("#voice-status")).to_contain_text("done in", timeout=300_000)
            out = REPO / "docs" / "screenshots" / "voice.png"
            page.screenshot(path=str(out), full_page=True)
            print(page.locator("#voice-chat").inner_text())
            print(f"saved {out}")
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()

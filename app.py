"""mmdemo: `python app.py` (also the Hugging Face Spaces entry point). Settings: MMDEMO_* env."""

from mmdemo.ui.app import main

if __name__ == "__main__":
    main()

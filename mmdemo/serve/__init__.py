"""HTTP APIs served beside the Gradio app on the same port (``/v1``: OpenAI-compatible)."""

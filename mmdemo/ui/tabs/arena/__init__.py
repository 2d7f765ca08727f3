"""Arena tab: one image and prompt answered side by side by base and adapters; ``/arena``."""

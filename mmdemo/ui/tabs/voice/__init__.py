"""Voice assistant tab: speak (or upload), optionally with an image; hear and read the answer."""

"""Gestures tab: hands in an image, a video or the webcam to gestures and text; teaching."""

"""Video summary tab: chapters, key frames, transcript and summary of an uploaded video."""

"""Video summary: chapters, key frames, transcript and a written summary from sight and sound.

Stages (each its own module, each cached per file hash by ``cache.py``):
probe -> frames/shots (PyAV stream + colour histograms) -> vectors (CLIP) -> speech (VAD + ASR)
-> captions (VLM, CLIP labels as fallback) -> summary (chapters, LLM map-reduce).
``service.VideoService`` runs them as a generator of ``Progress`` and ``VideoResult`` messages.
"""

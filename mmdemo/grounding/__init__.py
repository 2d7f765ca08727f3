"""Grounding: boxes out of a VLM's answer ("where is the red circle?"), drawn on the image.

Pure functions, no model and no UI: ``parse`` reads each family's own box output into
original-image pixels, ``draw`` draws boxes, ``boxes`` holds the geometry (IoU, Qwen's
resize rule). The flow (``mmdemo/flows/grounding.py``), the evaluator
(``mmdemo/finetune/evaluate.py``) and the benchmark all use them.
"""

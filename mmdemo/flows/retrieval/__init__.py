"""CLIP retrieval: persistent, growing image indexes; text/image search; zero-shot labels.

``IndexService`` (service.py) is the entry point for the tab, the CLI and other tabs.
Importing this package imports numpy only; torch, open_clip and faiss load on first use.
"""

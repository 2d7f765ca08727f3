"""Model layer: the ModelManager, backend loaders, tiny builds and the adapter store.

Nothing here imports gradio or the flows. Heavy libraries are imported inside functions.
"""

"""mmdemo: a browser demo studio for multimodal LLMs.

Importing this package loads no model, imports no deep-learning framework and opens no socket.
"""

__version__ = "0.1.0"

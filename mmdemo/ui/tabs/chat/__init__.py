"""Visual chat tab: streamed multi-turn answers about images, an adapter picker and the
adapter manager; ``/chat`` and the adapter endpoints."""

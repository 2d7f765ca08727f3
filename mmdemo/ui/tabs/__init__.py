"""One package per tab, one shape: ``layout.py`` (``build(ctx)``: components and wiring),
``actions.py`` (named handlers), ``api.py`` (named endpoints) and, where formatting is
needed, ``view.py``."""

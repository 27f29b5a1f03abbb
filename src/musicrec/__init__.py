"""musicrec: a reproducible music-recommendation pipeline.

The package holds pure, typed functions, one module per concern; the thin DVC
entry points in ``stages/`` parse paths, load params and call into it.
"""

__version__ = "0.1.0"

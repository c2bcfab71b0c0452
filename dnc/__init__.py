"""dnc: search for deep networks that are both good and cheap (Deep-n-Cheap).

The public names live in their modules (``dnc.plugins``, ``dnc.suggest``, ``dnc.search``,
``dnc.bo``, ``dnc.train``, ``dnc.tracking``); this package imports nothing heavy so that
``python -m dnc --help`` stays fast.
"""

__version__ = "0.1.0"

"""dnc's Hydra configs (``pkg://dnc.conf``).

Importing this package registers dnc's schema (``dnc.config.DncConfig``) in Hydra's
``ConfigStore``, so every way of loading these configs (``python -m dnc``, Hydra's compose
API in a notebook or a test) types the ``search``, ``trainer``, ``storage`` and ``tracking``
groups; and the ``dnc.search_dir`` resolver the default storage uses.
"""

from dnc.config import register

register()

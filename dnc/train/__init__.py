"""Training on in-memory tensors (``trainer``, ``settings``), the built-in datasets
(``datasets``, ``morse``), on-device augmentation and the activation table.

Import the modules themselves (``from dnc.train.trainer import train``): this package imports
nothing, so the light ones (``settings``, ``datasets``) load without torch.
"""

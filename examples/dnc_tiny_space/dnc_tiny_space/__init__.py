"""Example third-party dnc plugin (kept import-light: Hydra imports it to read conf/)."""

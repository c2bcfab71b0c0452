"""Example third-party dnc plugin: a cost evaluator (kept import-light: Hydra imports it to
read conf/)."""

"""Adds the ``conf/`` folder of every installed dnc plugin to Hydra's config search path.

Hydra imports every module under ``hydra_plugins`` at start-up, so this reads package metadata
only (``importlib.metadata`` entry points) and imports no plugin.
"""

from importlib.metadata import entry_points

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class DncPluginsSearchPath(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for ep in sorted(entry_points(group="dnc.plugins"), key=lambda e: e.name):
            search_path.append(provider=f"dnc-plugin-{ep.name}", path=f"pkg://{ep.value}/conf")

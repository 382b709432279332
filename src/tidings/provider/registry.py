"""The map of provider names to classes.

Every module under `tidings.provider.<channel>/` registers its provider with `@register`;
`load_all()` imports them all, so adding a provider is adding one module.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from tidings.provider.base import CHANNELS, Provider

PROVIDERS: dict[str, type[Provider[Any]]] = {}


def register(cls: type[Provider[Any]]) -> type[Provider[Any]]:
    """Class decorator: make a provider available under `cls.name`."""
    existing = PROVIDERS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"provider {cls.name!r} is registered twice")
    PROVIDERS[cls.name] = cls
    return cls


def load_all() -> dict[str, type[Provider[Any]]]:
    """Import every provider module, so that each registers itself."""
    for channel in CHANNELS:
        try:
            package = importlib.import_module(f"tidings.provider.{channel}")
        except ModuleNotFoundError:
            continue
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{module.name}")
    return PROVIDERS

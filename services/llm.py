"""Which pydantic-ai model an agent's model string means."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pydantic_ai.models import Model

from services.echo import EchoModel

_registry: dict[str, Callable[[], Model]] = {"echo": EchoModel}


def register_model(name: str, factory: Callable[[], Model]) -> None:
    """Make ``name`` usable as an agent's model string (e.g. a scripted FunctionModel)."""
    _registry[name] = factory


def resolve(name: str) -> Model | str:
    """A registered model, else the string itself for pydantic-ai to infer (``openai:...``)."""
    factory = _registry.get(name)
    return factory() if factory is not None else name


def load_plugins(modules: str | None) -> None:
    for module in (m.strip() for m in (modules or "").split(",")):
        if module:
            importlib.import_module(module)

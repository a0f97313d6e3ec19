"""Which pydantic-ai model an agent's model string means."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from pydantic_ai.models import Model

from services.echo import EchoModel

ModelFactory = Callable[[], Model]


class ModelRegistry:
    """Model strings Parley resolves itself (``echo``, and what plugins add); any other string
    goes to pydantic-ai as it is (``openai:...``, ``anthropic:...``)."""

    def __init__(self) -> None:
        self._factories: dict[str, ModelFactory] = {"echo": EchoModel}

    def register(self, name: str, factory: ModelFactory) -> None:
        """Make ``name`` usable as an agent's model string (e.g. a scripted FunctionModel)."""
        self._factories[name] = factory

    def resolve(self, name: str) -> Model | str:
        factory = self._factories.get(name)
        return factory() if factory is not None else name

    def load_plugins(self, modules: str | None) -> None:
        """Import each module of ``PARLEY_PLUGINS`` and let it register its models.

        A plugin module defines ``register_models(models: ModelRegistry) -> None``.
        """
        for name in (m.strip() for m in (modules or "").split(",")):
            if not name:
                continue
            module = importlib.import_module(name)
            register = getattr(module, "register_models", None)
            if not callable(register):
                raise RuntimeError(f"plugin {name!r} defines no register_models(models) function")
            register(self)

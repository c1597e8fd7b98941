"""Where ``InterpolatedModel.generate(target=...)`` finds a controller when it is given none.

The engine (layer 1) solves a target score through any object with ``check(im)`` and
``weights_for(target, max_ppl_ratio=, clip=)`` (a :class:`clm.experiments.control.Controller`),
but it cannot import the controllers, which live above it (layer 3). A higher layer registers a
factory here instead: ``fn(im) -> controller``. The ``clm`` package facade registers the shipped
one (:func:`clm.experiments.control.shipped_controller` of the endpoints' base, imported only
when a target is first asked for), so ``im.generate(prompts, target={"sentiment": 0.7})`` works
after ``import clm``. The last factory registered wins; pass ``controller=`` to bypass them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clm.errors import ConfigError

CONTROLLER_FACTORIES: list[Callable[[Any], Any]] = []


def register_controller_factory(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Make ``fn(im)`` the controller of ``generate(target=...)`` without ``controller=``; returns
    ``fn`` (usable as a decorator). Registering the same function again moves it last."""
    if not callable(fn):
        raise ConfigError(f"a controller factory must be callable, got {fn!r}")
    if fn in CONTROLLER_FACTORIES:
        CONTROLLER_FACTORIES.remove(fn)
    CONTROLLER_FACTORIES.append(fn)
    return fn


def find_controller(im: Any) -> Any:
    """The controller of the last registered factory for ``im``; a one-line error if none is."""
    if not CONTROLLER_FACTORIES:
        raise ConfigError(
            "generate(target=...) needs a controller: pass controller= (e.g. clm.Controller.load(path)), "
            "or register a factory with clm.core.targets.register_controller_factory"
        )
    return CONTROLLER_FACTORIES[-1](im)

"""clm: continuous interpolation of LoRA endpoints (Kangaslahti & Alvarez-Melis, TMLR 2025).

    import clm
    model, tokenizer = clm.load_base("smollm2-135m")
    ends = clm.Endpoints.load("endpoints/smollm2-135m")
    im = clm.InterpolatedModel(model, tokenizer, ends)
    outs = im.generate(["Once upon a time"], weights=clm.Weights(alpha={"sentiment": 0.8}))

Heavy modules (torch, transformers) load on first use, so ``import clm`` stays fast.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import TYPE_CHECKING

from clm.core.targets import register_controller_factory
from clm.core.weights import Weights
from clm.errors import ClmError, ConfigError, DataError, EndpointsError, ModelError, WeightsError

# bitsandbytes (imported by PEFT) warns on every import on a CPU with AVX512-BF16 that the optional
# hub kernel package `kernels` is missing; its own CPU NF4 kernels run without it (and no machine
# of this project reaches the hub), so the note is only noise in every notebook's output.
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(lambda r: "kernels-community" not in r.getMessage())

_LAZY = {
    "load_base": "clm.core.models",
    "BaseInfo": "clm.core.models",
    "Endpoints": "clm.core.endpoints",
    "read_adapter": "clm.core.endpoints",
    "InterpolatedModel": "clm.core.engine",
    "Generation": "clm.core.engine",
    "Schedule": "clm.core.schedule",
    "Controller": "clm.experiments.control",
}
_SUBMODULES = ("widgets",)  # ``clm.widgets`` on first use (it needs ipywidgets only when a Dial is built)

__all__ = [
    "ClmError",
    "ConfigError",
    "DataError",
    "EndpointsError",
    "ModelError",
    "WeightsError",
    "Weights",
    *_LAZY,
    *_SUBMODULES,
]

if TYPE_CHECKING:  # pragma: no cover
    from clm.core.endpoints import Endpoints, read_adapter  # noqa: F401
    from clm.core.engine import Generation, InterpolatedModel  # noqa: F401
    from clm.core.models import BaseInfo, load_base  # noqa: F401
    from clm.core.schedule import Schedule  # noqa: F401
    from clm.experiments.control import Controller  # noqa: F401


@register_controller_factory
def _shipped_controller(im):
    """``im.generate(target=...)`` without ``controller=``: the shipped controller of the endpoints'
    base. The facade wires it in (clm.core.targets), so the engine imports nothing above it."""
    from clm.experiments.control import shipped_controller

    return shipped_controller(im.endpoints.base_id)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return import_module(f"clm.{name}")  # the import binds it as an attribute of clm
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'clm' has no attribute {name!r}")

"""The paper's five style attributes, their poles and data sources (see ../shared/data/README.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Pole = Literal["low", "high"]
#: The two poles of every attribute, in endpoint order: low = pole 0 (α = 0), high = pole 1 (α = 1).
POLES: tuple[Pole, Pole] = ("low", "high")
#: What an attribute (or pole directory) may be called: identifier-like, so never a path.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Attribute:
    name: str
    low: str  # pole 0
    high: str  # pole 1
    source: str  # the paper's source (the endpoints' training data)
    second: str  # the attribute directory of a second, broader source (for scorers)
    # The test accuracy on its source that this attribute's scorer must reach to be trusted (set
    # before measuring; 0.95 for simplicity, an easy task). The one place it is written:
    # clm.experiments.claims.Thresholds and the scorers' metrics.json read it from here.
    scorer_bar: float = 0.80


ATTRIBUTES: dict[str, Attribute] = {
    a.name: a
    for a in (
        Attribute("sentiment", "negative", "positive", "SST-2", "sentiment-tweets"),
        Attribute("politeness", "impolite", "polite", "Madaan et al. 2020 P_0 / P_9", "politeness-requests"),
        Attribute("formality", "informal", "formal", "GYAFC (Family & Relationships subset)", "formality-genre"),
        Attribute("simplicity", "complex", "simple", "novels / TinyStories", "simplicity-levels", scorer_bar=0.95),
        Attribute("humor", "non-humorous", "humorous", "FlickrStyle", "humor-jokes"),
    )
}
NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

"""Values of the overview's colour cells (a GPU's in the heatmap, a node's at scale) as sent:
rounded, whole numbers as ints, null for no data, and the colour scale's range."""
from __future__ import annotations

import numpy as np


def rounded(values: np.ndarray) -> np.ndarray:
    """Whole numbers from 10 up, one decimal below (NaN stays NaN)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(values) >= 10, np.round(values), np.round(values, 1))


def json_values(values: np.ndarray) -> list:
    """The cells as sent (any shape, as nested lists): a whole number as an int ("80", not
    "80.0": two bytes less a cell), null where a cell has no value; numpy converts all at once."""
    finite = np.isfinite(values)
    whole = finite & (values == np.round(values))
    out = values.astype(object)
    out[whole] = values[whole].astype(np.int64).astype(object)
    out[~finite] = None
    return out.tolist()


def color_range(shown: np.ndarray, fixed: tuple[float, float] | None) -> tuple[float | None, float | None]:
    """The colour scale's ends: the metric's fixed range, else the values' (None: no values)."""
    if fixed:
        return fixed
    if np.isfinite(shown).any():
        return float(np.nanmin(shown)), float(np.nanmax(shown))
    return None, None

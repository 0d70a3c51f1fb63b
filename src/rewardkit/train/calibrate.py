"""Temperature scaling of P(chosen beats rejected) = σ((r_c − r_r) / T), fitted after training.

T minimises the validation pairs' negative log-likelihood mean(−log σ(m / T)) over their margins m.
The NLL is convex in s = 1/T (its second derivative is mean(m² σ(s m) σ(−s m)) ≥ 0), so a
bisection on the derivative −mean(m σ(−s m)) finds the optimum exactly. When every validation pair
is ranked right the NLL falls without end as T → 0; the fit then stops at `min_temperature`.

No bias is fitted: every preference pair's label is "chosen wins", so a bias b in σ((m + b) / T)
would only grow without bound (it can be identified only on data labelled in both orders, where
the symmetric optimum is b = 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def calibration_nll(margins: Sequence[float], temperature: float) -> float:
    """mean(−log σ(m / T)) over the pairs' margins m = r_chosen − r_rejected."""
    return sum(-math.log(max(_sigmoid(m / temperature), 1e-300)) for m in margins) / len(margins)


def fit_temperature(
    margins: Sequence[float], min_temperature: float = 1e-2, max_temperature: float = 1e3
) -> float:
    """The temperature T in [min_temperature, max_temperature] minimising `calibration_nll`.

    Example:
        >>> round(fit_temperature([2.0, -1.0]), 3)  # root of x³ − x − 2 = 0, x = e^(1/T)
        2.383
    """
    margins = [float(m) for m in margins if m == m]
    if not margins or all(m == 0 for m in margins):
        return 1.0

    def slope(s: float) -> float:  # d NLL / ds with s = 1/T
        return -sum(m * _sigmoid(-s * m) for m in margins) / len(margins)

    lo, hi = 1.0 / max_temperature, 1.0 / min_temperature
    if slope(hi) <= 0:  # still falling at the smallest temperature allowed: every pair is right
        return min_temperature
    if slope(lo) >= 0:
        return max_temperature
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if slope(mid) > 0:
            hi = mid
        else:
            lo = mid
    return 1.0 / (0.5 * (lo + hi))

"""Exact 95 % intervals for the model scripts' figures (evaluate.py, home_eval.py): false events are
Poisson counts over the hours heard, recall a binomial share of the events played."""
from __future__ import annotations

import math


def poisson_bounds(k: int, q: float = 0.975) -> tuple[float, float]:
    """Exact 95 % interval of a Poisson mean after observing k events (bisection on the CDF)."""
    def cdf(mu: float, kk: int) -> float:
        return sum(math.exp(-mu + i * math.log(mu) - math.lgamma(i + 1)) for i in range(kk + 1)) if mu > 0 else 1.0

    def solve(target: float, kk: int) -> float:
        lo, hi = 0.0, 10.0 + 5 * k
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid, kk) > target else (lo, mid)
        return hi
    upper = solve(1 - q, k)
    lower = 0.0 if k == 0 else solve(q, k - 1)
    return lower, upper


def binomial_bounds(k: int, n: int) -> tuple[float, float]:
    """Exact (Clopper-Pearson) 95 % interval, by bisection on the binomial CDF."""
    def cdf(p: float, kk: int) -> float:
        if p <= 0:
            return 1.0
        if p >= 1:
            return 0.0 if kk < n else 1.0
        return sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                            + i * math.log(p) + (n - i) * math.log(1 - p)) for i in range(kk + 1))

    def solve(target: float, kk: int) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if cdf(mid, kk) > target else (lo, mid)
        return hi
    lower = 0.0 if k == 0 else solve(0.975, k - 1)
    upper = 1.0 if k == n else solve(0.025, k)
    return lower, upper

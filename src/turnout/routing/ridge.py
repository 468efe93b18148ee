"""Exponentially weighted ridge least squares in three coefficients, learned one point at a time.

What the routing estimates and the balancer's service rates both fit: recent points weigh more
(a deployment that slows down is followed), and any direction the data cannot see stays at its
prior (while every prompt has had the same length, the prompt slope is the prior's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Vec3 = tuple[float, float, float]


def solve3(m: list[list[float]], v: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None when singular."""
    a = [[*row, rhs] for row, rhs in zip(m, v, strict=True)]
    for col in range(3):
        piv = max(range(col, 3), key=lambda r: abs(a[r][col]))
        if abs(a[piv][col]) < 1e-15:
            return None
        a[col], a[piv] = a[piv], a[col]
        for r in range(col + 1, 3):
            f = a[r][col] / a[col][col]
            for c in range(col, 4):
                a[r][c] -= f * a[col][c]
    x = [0.0, 0.0, 0.0]
    for r in (2, 1, 0):
        x[r] = (a[r][3] - sum(a[r][c] * x[c] for c in range(r + 1, 3))) / a[r][r]
    return x


@dataclass(slots=True)
class Ridge3:
    """y ≈ coef · x, refitted after every point; coefficients are kept non-negative."""

    prior: Vec3
    ridge: Vec3  # pull toward the prior, in each coefficient's scale
    forget: float  # per point: older ones fade
    coef: Vec3 = (0.0, 0.0, 0.0)
    count: int = 0
    moments: list[list[float]] = field(default_factory=lambda: [[0.0] * 3 for _ in range(3)])
    targets: list[float] = field(default_factory=lambda: [0.0] * 3)

    def __post_init__(self) -> None:
        self.coef = self.prior

    def add(self, x: Vec3, y: float, weight: float = 1.0) -> None:
        self.count += 1
        m, v = self.moments, self.targets
        for i in range(3):
            v[i] = self.forget * v[i] + weight * x[i] * y
            for j in range(3):
                m[i][j] = self.forget * m[i][j] + weight * x[i] * x[j]
        ridged = [
            [m[i][j] + (self.ridge[i] if i == j else 0.0) for j in range(3)] for i in range(3)
        ]
        rhs = [v[i] + self.ridge[i] * self.prior[i] for i in range(3)]
        sol = solve3(ridged, rhs)
        if sol is not None:
            self.coef = (max(sol[0], 0.0), max(sol[1], 0.0), max(sol[2], 0.0))

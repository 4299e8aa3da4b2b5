"""Exact (float64) scores where float32 GEMM rounding could change a count: the proven bound, and re-scoring.

A template is L2-normalised in float64 and rounded to float32 (:func:`unit32`; relative error ≤ u = 2⁻²⁴ per
element). For two such unit vectors of dimension d, any float32 dot product, whatever its summation order
(blocked, pairwise, FMA: every BLAS), differs from the exact cosine ``x̂·ŷ`` by at most

    γ_d·(1+u)² + 2u + u²,   γ_d = d·u / (1 − d·u)

(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1: |fl(xᵀy) − xᵀy| ≤ γ_d |x|ᵀ|y|, and
|x|ᵀ|y| ≤ 1 for unit vectors; the 2u + u² is the rounding of the two vectors to float32). :func:`score_bound`
returns twice that (a margin for the float64 reference's own ~1e-15 error): for d = 128 about 1.6e-5. A float32
score farther than this bound from a threshold is on the same side of it as the exact score; only the scores
within the bound are re-scored in float64 (:func:`dot64`), so every count is the float64 count.
"""

from __future__ import annotations

import numpy as np

U32 = 2.0**-24
"""Unit roundoff of float32."""


def score_bound(dim: int) -> float:
    """Twice the proven bound on |float32 score − exact cosine| for templates of dimension ``dim``."""
    gamma = dim * U32 / (1 - dim * U32)
    return 2.0 * (gamma * (1 + U32) ** 2 + 2 * U32 + U32 * U32)


def unit64(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised in float64."""
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def unit32(x: np.ndarray) -> np.ndarray:
    """Rows L2-normalised in float64, then rounded to float32 (the GEMM's input)."""
    return unit64(x).astype(np.float32)


def dot64(a: np.ndarray, b: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float64 scores ``a[rows[i]] · b[cols[i]]`` of float64 unit rows (the exact score, to ~1e-15)."""
    if len(rows) == 0:
        return np.zeros(0, np.float64)
    return np.einsum("ij,ij->i", a[rows], b[cols])

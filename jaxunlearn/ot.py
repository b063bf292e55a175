"""Entropic optimal transport between two point clouds (Sinkhorn).

Cuturi, "Sinkhorn Distances", NeurIPS 2013; log-domain stabilisation as in
Peyré & Cuturi, "Computational Optimal Transport" (2019), Sec. 4.4. Used by
DLFD (arXiv 2409.14747) as a distance between feature distributions. Two
solvers of the same problem:

``sinkhorn`` (converged, DLFD's paper variant). With marginals ``a``
(uniform over the real rows, ``mask``) and ``b`` (uniform), cost ``C`` and
``ε``, the dual potentials iterate

  f_i = -ε logsumexp_j( (g_j - C_ij) / ε + log b_j )
  g_j = -ε logsumexp_i( (f_i - C_ij) / ε + log a_i )

until the row-marginal error ``Σ_i |π_i· - a_i|`` (the column marginals are
exact after each g update) is below ``tol`` or ``max_iters`` is reached
(``lax.while_loop``); the plan is ``π_ij = a_i b_j exp((f_i + g_j - C_ij)/ε)``
and the distance the transport cost ``<π, C>``. Always in float32 (the cost
is cast, whatever the model's dtype): the potentials are divided by ε, and
in bfloat16 the row-marginal error of a 32x32 cosine cost at ε = 0.01
stalls at 0.18 (float32: 1e-5). In float32 with ε = 0.01 that
error stops falling near 1e-5 to 1e-4 (``f/ε`` amplifies rounding), so the
default ``tol`` is 1e-4, where the cost is within a few 1e-6 of a float64
fixed point. A while loop is not reverse-differentiable, and differentiating
through thousands of unrolled iterations would store them all, so the
potentials get their gradient by implicit differentiation of the fixed
point (Luise et al., "Differential Properties of Sinkhorn Approximation",
NeurIPS 2018): with ``H = [[diag(π1), π], [πᵀ, diag(πᵀ1)]]`` and the
cotangents ``(f̄, ḡ)``, solve ``H λ = ε (f̄, ḡ)`` (H is singular along
``(1, -1)``, the potentials' gauge, so that direction is added to it) and
``C̄_ij = π_ij (λ_i + λ_{n+j}) / ε``; the cost's own dependence on ``C``
is differentiated normally. This is the exact gradient of the converged
cost (tests/test_dlfd.py compares it with the gradient through 5,000
unrolled float64 iterations). The envelope theorem (plan held constant)
would give the gradient of the regularised objective ``<π,C> - ε H(π)``,
not of the transport cost, so it is not used.

``sinkhorn_released`` (the authors' ``sinkhorn``, Dasol-Choi/DLFD
unlearn/dlfd.py, DLFD's released variant), in float32: ``u = v = 0``; at
most ``max_iters`` = 50 times ``u <- ε (log μ - lse(M(u, v))) + u``,
``v <- ε (log ν - lse(M(u, v)ᵀ)) + v`` with ``M = (-C + u_i + v_j)/ε`` and
``lse(A) = log(Σ_j exp(A_ij) + 1e-6)``, stopping after the iteration where
``Σ|u - u_prev| < 0.1``; plan ``exp(M(u, v))``, cost ``<π, C>``. It stops
long before convergence (a few iterations on typical inputs). Written as a
fixed-length ``fori_loop`` that freezes once the criterion is met, so it
is reverse-differentiable like the authors' (autograd through the loop).
"""
from __future__ import annotations

import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax import lax

_LOG_ZERO = -1e9  # log of a zero marginal weight (finite: keeps gradients NaN-free)


def cosine_cost(x: jnp.ndarray, y: jnp.ndarray, eps: float = 1e-8) -> jnp.ndarray:
  """C_ij = max(0, 1 - cos(x_i, y_j)), shape [n, m]."""
  x = x.astype(jnp.float32)
  y = y.astype(jnp.float32)
  xn = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
  yn = y / jnp.maximum(jnp.linalg.norm(y, axis=-1, keepdims=True), eps)
  return jnp.maximum(0.0, 1.0 - xn @ yn.T)


def _log_weights(n: int, mask: Optional[jnp.ndarray]) -> jnp.ndarray:
  if mask is None:
    return jnp.full((n,), -jnp.log(n), jnp.float32)
  mask = mask.astype(jnp.float32)
  total = jnp.maximum(jnp.sum(mask), 1.0)
  return jnp.where(mask > 0, jnp.log(jnp.maximum(mask, 1e-30) / total), _LOG_ZERO)


def _log_plan(cost, f, g, log_a, log_b, epsilon):
  return log_a[:, None] + log_b[None, :] + (f[:, None] + g[None, :] - cost) / epsilon


def solve_potentials(cost, log_a, log_b, epsilon: float, tol: float,
                     max_iters: int):
  """(f, g, iterations, row-marginal error) of the log-domain Sinkhorn loop
  (no gradient; ``sinkhorn`` differentiates the fixed point)."""
  n, m = cost.shape
  a = jnp.exp(log_a)

  def cond(s):
    _, _, it, err = s
    return (err > tol) & (it < max_iters)

  def body(s):
    f, g, it, _ = s
    f_new = -epsilon * jax.nn.logsumexp(
        (g[None, :] - cost) / epsilon + log_b[None, :], axis=1)
    # Row sums of the current plan are a_i exp((f_i - f_new_i) / ε).
    err = jnp.sum(a * jnp.abs(jnp.expm1((f - f_new) / epsilon)))
    g = -epsilon * jax.nn.logsumexp(
        (f_new[:, None] - cost) / epsilon + log_a[:, None], axis=0)
    return f_new, g, it + 1, err

  init = (jnp.zeros(n, jnp.float32), jnp.zeros(m, jnp.float32), jnp.int32(0),
          jnp.float32(jnp.inf))
  return lax.while_loop(cond, body, init)


def _spd_solve(matrix, rhs):
  """``matrix⁻¹ rhs`` for a symmetric positive definite ``matrix`` by
  Gauss-Jordan elimination without pivoting (stable for SPD matrices), in
  plain array ops. Not ``jnp.linalg.solve``/LAPACK: XLA:CPU's YNNPACK
  elementwise fusion (the library's CPU setting, ``parallel.configure_cpu``)
  rejects the column-major operand LAPACK needs, at run time."""
  def body(i, carry):
    a, b = carry
    row, b_i = a[i] / a[i, i], b[i] / a[i, i]
    col = a[:, i]
    a = (a - col[:, None] * row[None, :]).at[i].set(row)
    b = (b - col * b_i).at[i].set(b_i)
    return a, b
  return lax.fori_loop(0, matrix.shape[0], body, (matrix, rhs))[1]


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _potentials(cost, log_a, log_b, epsilon, tol, max_iters):
  f, g, _, _ = solve_potentials(cost, log_a, log_b, epsilon, tol, max_iters)
  return f, g


def _potentials_fwd(cost, log_a, log_b, epsilon, tol, max_iters):
  f, g = _potentials(cost, log_a, log_b, epsilon, tol, max_iters)
  return (f, g), (cost, log_a, log_b, f, g)


def _potentials_bwd(epsilon, tol, max_iters, res, cotangents):
  """Implicit differentiation of the marginal conditions (module docstring)."""
  cost, log_a, log_b, f, g = res
  f_bar, g_bar = cotangents
  n, m = cost.shape
  plan = jnp.exp(_log_plan(cost, f, g, log_a, log_b, epsilon))
  real = jnp.concatenate([log_a, log_b]) > _LOG_ZERO / 2
  hess = jnp.block([[jnp.diag(plan.sum(1)), plan],
                    [plan.T, jnp.diag(plan.sum(0))]])
  gauge = jnp.concatenate([jnp.ones(n), -jnp.ones(m)]) * real
  scale = jnp.sum(jnp.diag(hess)) / jnp.maximum(jnp.sum(real), 1.0)
  # H + (gauge term) is positive definite; padded points carry no mass, so an
  # identity row keeps it so there.
  hess = (hess + scale * jnp.outer(gauge, gauge) / jnp.sum(gauge * gauge)
          + jnp.diag(jnp.where(real, 0.0, 1.0)))
  rhs = epsilon * jnp.concatenate([f_bar, g_bar]) * real
  lam = _spd_solve(hess, rhs)
  cost_bar = plan * (lam[:n, None] + lam[None, n:]) / epsilon
  return cost_bar, jnp.zeros_like(log_a), jnp.zeros_like(log_b)


_potentials.defvjp(_potentials_fwd, _potentials_bwd)


def sinkhorn(cost: jnp.ndarray, epsilon: float = 0.01, tol: float = 1e-4,
             max_iters: int = 5000, mask_a: Optional[jnp.ndarray] = None,
             mask_b: Optional[jnp.ndarray] = None
             ) -> tuple[jnp.ndarray, jnp.ndarray]:
  """Converged log-domain Sinkhorn on ``cost`` [n, m]: (transport cost
  <π, C>, plan π), differentiable in ``cost`` (module docstring).

  ``mask_a``/``mask_b`` (1 = real point) give the uniform marginals over the
  real points only, so padded batch rows carry no mass.
  """
  n, m = cost.shape
  cost = cost.astype(jnp.float32)
  log_a = _log_weights(n, mask_a)
  log_b = _log_weights(m, mask_b)
  f, g = _potentials(cost, log_a, log_b, epsilon, tol, max_iters)
  plan = jnp.exp(_log_plan(cost, f, g, log_a, log_b, epsilon))
  return jnp.sum(plan * cost), plan


def sinkhorn_released(cost: jnp.ndarray, epsilon: float = 0.01,
                      max_iters: int = 50, thresh: float = 0.1,
                      mask_a: Optional[jnp.ndarray] = None
                      ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
  """The authors' Sinkhorn (module docstring): (cost <π, C>, plan π,
  iterations run). ``mask_a`` drops padded rows (the authors skip partial
  batches instead): their ``u`` stays at a large negative value, so they
  carry no mass and no error."""
  n, m = cost.shape
  cost = cost.astype(jnp.float32)
  real = jnp.ones(n, bool) if mask_a is None else mask_a > 0
  log_mu = jnp.where(real, -jnp.log(jnp.maximum(jnp.sum(real), 1)), 0.0)
  log_nu = jnp.full((m,), -jnp.log(m), jnp.float32)
  u_padded = -1e4 * jnp.maximum(epsilon, 1.0)

  def scaled(u, v):
    return (-cost + u[:, None] + v[None, :]) / epsilon

  def lse(a):
    return jnp.log(jnp.sum(jnp.exp(a), axis=1) + 1e-6)

  def body(_, s):
    u, v, done, it = s
    u_new = jnp.where(real, epsilon * (log_mu - lse(scaled(u, v))) + u, u_padded)
    v_new = epsilon * (log_nu - lse(scaled(u_new, v).T)) + v
    err = jnp.sum(jnp.abs(u_new - u))
    u, v = jnp.where(done, u, u_new), jnp.where(done, v, v_new)
    return u, v, done | (err < thresh), it + jnp.where(done, 0, 1)

  init = (jnp.where(real, 0.0, u_padded), jnp.zeros(m, jnp.float32),
          jnp.array(False), jnp.int32(0))
  u, v, _, iters = lax.fori_loop(0, max_iters, body, init)
  plan = jnp.exp(scaled(u, v))
  return jnp.sum(plan * cost), plan, iters


def ot_distance(x: jnp.ndarray, y: jnp.ndarray, epsilon: float = 0.01,
                tol: float = 1e-4, max_iters: int = 5000,
                mask_x: Optional[jnp.ndarray] = None,
                mask_y: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """Converged entropic OT cost between feature sets ``x`` [n, d] and ``y``
  [m, d] under the cosine cost max(0, 1 - cos)."""
  return sinkhorn(cosine_cost(x, y), epsilon, tol, max_iters, mask_x, mask_y)[0]


def ot_distance_released(x: jnp.ndarray, y: jnp.ndarray, epsilon: float = 0.01,
                         mask_x: Optional[jnp.ndarray] = None) -> jnp.ndarray:
  """The authors' ``compute_ot_loss``: their Sinkhorn (50 iterations at
  most, stop at error 0.1) on the cosine cost (torch's
  ``CosineSimilarity(eps=1e-6)``)."""
  return sinkhorn_released(cosine_cost(x, y, eps=1e-6), epsilon,
                           mask_a=mask_x)[0]

"""The swap and chain searches' bookkeeping and ``_type_values`` as of main at 6d57904
(before the cached reach, the undo of rejected moves, the sort-free unions and the
compare-exchange network), the reference of
``scripts/bench_speed.py --phases`` (the current code must give the same solutions bit for
bit).  Copied verbatim apart from the class names."""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from towerplan.siting._heuristics import _adjacency
from towerplan.siting._model import (
    SWAP_PASSES,
    MCLPProblem,
    MCLPSolution,
    _gather,
    _pick_tenants,
    evaluate,
)


class FormerSwapState:
    """Mutable bookkeeping of :func:`local_search`: coverage counts, residual weights, values."""

    def __init__(self, prob: MCLPProblem, sol: MCLPSolution) -> None:
        m, n_op = prob.n_cand, prob.n_ops
        self.prob = prob
        A = prob.A
        self.Acsc = A.tocsc()
        self.sites = sol.sites.copy()
        self.ten = sol.tenants.copy()
        self.shared = sol.shared.copy()
        sites, ten = self.sites, self.ten
        self.cnt = np.asarray(A[:, sites].astype(np.int32) @ ten.astype(np.int32)).reshape(
            prob.n_rows, n_op
        )
        self.Wres = prob.W * (self.cnt == 0)
        self.open_ten = np.zeros((m, n_op), dtype=bool)
        self.open_ten[sites] = ten
        self.G = (np.asarray(A.T @ self.Wres) if prob.n_rows else np.zeros((m, n_op))) + prob.C * (
            ~self.open_ten
        )
        self.D, self.S = former_type_values(self.G, prob.cap)
        self.is_open = np.zeros(m, dtype=bool)
        self.is_open[sites] = True
        self.seen = np.zeros(m, dtype=bool)  # scratch of refresh (all False between calls)
        self.where = np.zeros(m, dtype=np.int64)  # scratch of refresh
        self.nblock = np.zeros(m, dtype=np.int64)
        conf = prob.conflicts
        if conf is not None:
            for j in sites:
                self.nblock[conf.indices[conf.indptr[j] : conf.indptr[j + 1]]] += 1

    def col_rows(self, j: int) -> np.ndarray:
        """Rows covered by candidate ``j``."""
        return self.Acsc.indices[self.Acsc.indptr[j] : self.Acsc.indptr[j + 1]]

    def block(self, j: int, step: int) -> None:
        """Add ``step`` to the conflict counters of the neighbours of ``j``."""
        conf = self.prob.conflicts
        if conf is not None:
            self.nblock[conf.indices[conf.indptr[j] : conf.indptr[j + 1]]] += step

    def refresh(self, rows: np.ndarray, extra_cols: np.ndarray) -> None:
        """Recompute Wres on rows and G, D, S on the affected candidates."""
        prob, G, Wres = self.prob, self.G, self.Wres
        A, C, cap = prob.A, prob.C, prob.cap
        # (take: the same values as fancy indexing, several times less overhead)
        newres = prob.W.take(rows, axis=0) * (self.cnt.take(rows, axis=0) == 0)
        dW = newres - Wres.take(rows, axis=0)
        Wres[rows] = newres
        moved = np.flatnonzero((dW != 0).any(axis=1))  # other rows add exact zeros to G
        pos, cols = _gather(A.indptr, A.indices, rows.take(moved))
        if len(cols):
            n_op = prob.n_ops
            self.seen[cols] = True  # uc, inv as np.unique(cols, return_inverse=True), no sort
            uc = np.flatnonzero(self.seen)
            self.seen[uc] = False
            self.where[uc] = np.arange(len(uc))
            inv = self.where[cols]
            # one bincount for all operators: each (candidate, operator) sum in the same order
            flat = (inv[:, None] * n_op + np.arange(n_op)).ravel()
            w = dW.take(moved.take(pos), axis=0).ravel()
            dG = np.bincount(flat, weights=w, minlength=len(uc) * n_op)
            G[uc] += dG.reshape(len(uc), n_op)
        else:
            uc = np.zeros(0, dtype=np.int64)
        for c in extra_cols:
            G[c] = Wres.take(self.col_rows(int(c)), axis=0).sum(axis=0) + C[c] * (~self.open_ten[c])
        aff = np.concatenate([uc, extra_cols])  # a repeated candidate gets the same values
        self.D[aff], self.S[aff] = former_type_values(G.take(aff, axis=0), cap.take(aff))

    def place(self, s: int, j: int, rows: np.ndarray, tm: np.ndarray) -> None:
        """Open structure ``s`` at candidate ``j`` (covering ``rows``) with tenants ``tm``."""
        self.cnt[np.ix_(rows, np.flatnonzero(tm))] += 1
        self.sites[s] = j
        self.ten[s] = tm
        self.is_open[j] = True
        self.open_ten[j] = tm
        self.block(j, 1)

    def remove(self, s: int) -> tuple[int, np.ndarray, np.ndarray, float]:
        """Tentatively remove structure ``s``: (its candidate, tenants, rows, value lost)."""
        W, C = self.prob.W, self.prob.C
        j = int(self.sites[s])
        T = self.ten[s].copy()
        rows = self.col_rows(j)
        Tidx = np.flatnonzero(T)
        Wt = W.take(rows, axis=0).take(Tidx, axis=1)  # = W[np.ix_(rows, Tidx)]
        loss = float((Wt * (self.cnt.take(rows, axis=0).take(Tidx, axis=1) == 1)).sum())
        loss += float(C[j, Tidx].sum())
        self.cnt[np.ix_(rows, Tidx)] -= 1
        self.is_open[j] = False
        self.open_ten[j] = False
        self.block(j, -1)
        self.refresh(rows, np.array([j]))
        return j, T, rows, loss

    def try_move(self, s: int, tol: float) -> float | None:
        """Remove structure ``s`` and re-insert the best one of its type; the gain or ``None``."""
        cap = self.prob.cap
        t_shared = bool(self.shared[s])
        j, T, rows, loss = self.remove(s)
        vals = self.S if t_shared else self.D
        elig = (~self.is_open) & (self.nblock == 0)
        cand_vals = np.where(elig, vals, -np.inf)
        best = int(np.argmax(cand_vals))
        best_v = float(cand_vals[best])
        if best_v > loss + tol and best != j:
            tm = _pick_tenants(self.G[best], t_shared, int(cap[best]))
            brow = self.col_rows(best)
            self.place(s, best, brow, tm)
            self.refresh(brow, np.array([best, j]))
            return best_v - loss
        # restore j (possibly with better tenants at the same place)
        g = self.G[j]
        tm = _pick_tenants(g, t_shared, int(cap[j]))
        gain_new = float(g[tm].sum())
        gain: float | None = None
        if gain_new > loss + tol:
            gain = gain_new - loss
        else:
            tm = T
        self.place(s, j, rows, tm)
        self.refresh(rows, np.array([j]))
        return gain


def former_type_change_values(
    prob: MCLPProblem, sol: MCLPSolution, cnt: np.ndarray, AT: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per open structure: value lost by making it dedicated, gained by making it shared.

    ``cnt`` is the coverage count per (row, operator), ``AT`` the coverage columns of
    ``sol.sites`` transposed (float CSR, one row per structure).  A shared structure keeps its tenant of largest unique value (``loss``:
    the unique value of the others); a dedicated one adds its best other operators (at
    least one, up to ``cap - 1``; ``gain``: their newly covered value).  ``keep[s]`` is the
    tenant kept or the mask of the new tenants.  Both are exact for one structure alone
    (other structures unchanged).
    """
    k, n_op = sol.tenants.shape
    T = sol.tenants
    Cs = prob.C[sol.sites]
    # only the rows the structures cover: the same products, summed in the same order
    cov = np.unique(AT.indices)
    ATr = sp.csr_matrix((AT.data, np.searchsorted(cov, AT.indices), AT.indptr), (k, len(cov)))
    W, cnt = prob.W[cov], cnt[cov]
    u = np.asarray(ATr @ (W * (cnt == 1))).reshape(k, n_op) + Cs
    u = np.where(T, u, -np.inf)
    best_o = np.argmax(u, axis=1)
    rows = np.arange(k)
    loss = np.where(sol.shared, np.where(T, u, 0.0).sum(axis=1) - u[rows, best_o], np.inf)
    g = np.asarray(ATr @ (W * (cnt == 0))).reshape(k, n_op) + Cs * ~T
    g = np.where(T, -np.inf, g)
    order = np.argsort(-g, axis=1, kind="stable")
    gs = np.take_along_axis(g, order, axis=1)
    n_add = np.minimum(prob.cap[sol.sites], n_op) - 1
    take = (np.arange(n_op)[None, :] < n_add[:, None]) & (
        (np.arange(n_op)[None, :] == 0) | (gs > 0)
    )
    ok = ~sol.shared & (n_add >= 1)
    gain = np.where(ok, np.where(take, gs, 0.0).sum(axis=1), -np.inf)
    keep = np.zeros((k, n_op), dtype=bool)
    keep[rows, best_o] = sol.shared
    np.put_along_axis(keep, order, take & ok[:, None], axis=1)
    keep[sol.shared] = False
    keep[sol.shared, best_o[sol.shared]] = True
    return loss, gain, keep


def former_pair_delta(
    prob: MCLPProblem,
    Acsc: sp.csc_matrix,
    cnt: np.ndarray,
    drop: tuple[int, np.ndarray],
    add: tuple[int, np.ndarray],
) -> float:
    """Exact objective change of removing tenants ``drop[1]`` at candidate ``drop[0]`` and
    adding tenants ``add[1]`` at candidate ``add[0]`` (``cnt``: coverage count per row and
    operator of the current solution)."""
    (ja, oa), (jb, ob) = drop, add
    ra = Acsc.indices[Acsc.indptr[ja] : Acsc.indptr[ja + 1]]
    rb = Acsc.indices[Acsc.indptr[jb] : Acsc.indptr[jb + 1]]
    R = np.union1d(ra, rb)
    new = cnt[R].copy()
    new[np.ix_(np.searchsorted(R, ra), oa)] -= 1
    new[np.ix_(np.searchsorted(R, rb), ob)] += 1
    WR = prob.W[R]
    d = float((WR * (new > 0)).sum() - (WR * (cnt[R] > 0)).sum())
    return d - float(prob.C[ja, oa].sum()) + float(prob.C[jb, ob].sum())


class FormerChainState:
    """Swap-search state plus the one-structure type-change values of every structure."""

    def __init__(self, prob: MCLPProblem, sol: MCLPSolution) -> None:
        self.sw = FormerSwapState(prob, sol)
        self.adj = _adjacency(prob)
        self.chains = 0
        self.update()

    def update(self, ends: tuple[int, ...] | None = None) -> None:
        """Recompute the type-change values: all, or (after a move) those of the
        structures sharing a row with the candidates ``ends`` (the others are unchanged)."""
        sw = self.sw
        if ends is None:
            idx = np.arange(len(sw.sites))
        else:
            near = np.zeros(sw.prob.n_cand, dtype=bool)
            for j in ends:
                near[self.adj.indices[self.adj.indptr[j] : self.adj.indptr[j + 1]]] = True
                near[j] = True
            idx = np.flatnonzero(near[sw.sites])
        AT = sw.Acsc[:, sw.sites[idx]].T.tocsr().astype(float)
        loss, gain, keep = former_type_change_values(
            sw.prob, MCLPSolution(sw.sites[idx], sw.ten[idx], sw.shared[idx]), sw.cnt, AT
        )
        if ends is None:
            self.loss, self.gain, self.keep = loss, gain, keep
        else:
            self.loss[idx], self.gain[idx], self.keep[idx] = loss, gain, keep

    def compensation(self, s: int, to_shared: bool, ends: tuple[int, int]) -> tuple[float, int]:
        """Best conversion the other way of a structure sharing no row with ``ends``.

        ``to_shared``: a dedicated structure becomes shared (value: its gain); else a
        shared one becomes dedicated (value: minus its loss).  ``(-inf, -1)`` if none.
        """
        sw = self.sw
        near = np.zeros(sw.prob.n_cand, dtype=bool)
        for j in ends:
            near[self.adj.indices[self.adj.indptr[j] : self.adj.indptr[j + 1]]] = True
            near[j] = True
        ok = ~near[sw.sites]
        ok[s] = False
        if to_shared:
            idx = np.flatnonzero(ok & ~sw.shared & np.isfinite(self.gain))
            if not len(idx):
                return -np.inf, -1
            c = int(idx[np.argmax(self.gain[idx])])
            return float(self.gain[c]), c
        idx = np.flatnonzero(ok & sw.shared)
        if not len(idx):
            return -np.inf, -1
        c = int(idx[np.argmin(self.loss[idx])])
        return -float(self.loss[c]), c

    def convert(self, c: int) -> None:
        """Apply the type change of structure ``c`` (its tenants from ``keep``)."""
        sw = self.sw
        j = int(sw.sites[c])
        rows = sw.col_rows(j)
        old = sw.ten[c].copy()
        new = self.keep[c].copy() if sw.shared[c] else old | self.keep[c]
        sw.cnt[np.ix_(rows, np.flatnonzero(old & ~new))] -= 1
        sw.cnt[np.ix_(rows, np.flatnonzero(new & ~old))] += 1
        sw.ten[c], sw.shared[c] = new, not sw.shared[c]
        sw.open_ten[j] = new
        sw.refresh(rows, np.array([j]))

    def try_move(self, s: int, tol: float) -> float | None:
        """Remove structure ``s``; re-insert the best structure of its type anywhere (a swap)
        or of the *other* type anywhere while one far structure (sharing no row with
        either end) converts the other way (a chain, quotas kept); the better one is
        applied when it gains more than ``tol``; returns the gain or ``None``."""
        sw = self.sw
        was_shared = bool(sw.shared[s])
        j, T, rows, loss = sw.remove(s)
        elig = (~sw.is_open) & (sw.nblock == 0)
        same = np.where(elig, sw.S if was_shared else sw.D, -np.inf)
        other = np.where(elig, sw.D if was_shared else sw.S, -np.inf)
        b1, b2 = int(np.argmax(same)), int(np.argmax(other))
        comp, c = self.compensation(s, was_shared, (j, b2))
        v1 = float(same[b1]) - loss
        v2 = float(other[b2]) - loss + comp if c >= 0 else -np.inf
        if max(v1, v2) <= tol or not np.isfinite(max(v1, v2)):
            sw.place(s, j, rows, T)
            sw.refresh(rows, np.array([j]))
            return None
        chain = v2 > v1
        best = b2 if chain else b1
        shared_now = was_shared != chain
        tm = _pick_tenants(sw.G[best], shared_now, int(sw.prob.cap[best]))
        brow = sw.col_rows(best)
        sw.place(s, best, brow, tm)
        sw.shared[s] = shared_now
        sw.refresh(brow, np.array([best, j]))
        ends = [j, best]
        if chain:
            ends.append(int(sw.sites[c]))
            self.convert(c)
            self.chains += 1
        self.update(tuple(ends))
        return v2 if chain else v1


def former_type_swap_search(
    prob: MCLPProblem, sol: MCLPSolution, max_moves: int = SWAP_PASSES, shortlist: int = 8
) -> MCLPSolution:
    """Multi-operator move: one shared structure becomes dedicated, one dedicated becomes shared.

    Swap local search and LNS keep the type of every structure (and the LNS the number of
    each type in a window), so the split of the shared quota over the city is only chosen
    by the start solution; this move changes it while keeping both quotas.  For each move
    the ``shortlist`` shared structures losing least and the ``shortlist`` dedicated ones
    gaining most (one-structure values of :func:`_type_change_values`) are paired, every
    pair's change is evaluated exactly and the best improving one is applied; stops after
    ``max_moves`` moves or when no pair improves.  Deterministic.
    """
    t0 = time.perf_counter()
    if prob.n_shared == 0 or prob.n_dedicated == 0 or len(sol.sites) == 0:
        return sol
    scale = max(prob.total_weight, 1.0)
    ten, shared = sol.tenants.copy(), sol.shared.copy()
    moves = 0
    evals = 0
    Acsc = prob.A.tocsc()
    A_s = prob.A[:, sol.sites].astype(np.int32)
    AT = A_s.T.tocsr().astype(float)  # the sites never change here, only types and tenants
    while moves < max_moves:
        cnt = np.asarray(A_s @ ten.astype(np.int32)).reshape(prob.n_rows, prob.n_ops)
        loss, gain, keep = former_type_change_values(
            prob, MCLPSolution(sol.sites, ten, shared), cnt, AT
        )
        sh = np.flatnonzero(shared)
        de = np.flatnonzero(~shared & np.isfinite(gain))
        sh = sh[np.argsort(loss[sh], kind="stable")[:shortlist]]
        de = de[np.argsort(-gain[de], kind="stable")[:shortlist]]
        best: tuple[float, int, int] | None = None
        for a in sh:
            for b in de:
                d = former_pair_delta(
                    prob,
                    Acsc,
                    cnt,
                    (int(sol.sites[a]), np.flatnonzero(ten[a] & ~keep[a])),
                    (int(sol.sites[b]), np.flatnonzero(keep[b])),
                )
                evals += 1
                if d > 1e-9 * scale and (best is None or d > best[0]):
                    best = (d, int(a), int(b))
        if best is None:
            break
        _, sa, sb = best
        ten[sa], shared[sa] = keep[sa], False
        ten[sb], shared[sb] = ten[sb] | keep[sb], True
        moves += 1
    out = MCLPSolution(sol.sites, ten, shared, method=sol.method + "+type swaps")
    out.objective = evaluate(prob, out)
    out.time_limited = sol.time_limited
    out.log = dict(sol.log)
    out.log.update(
        type_swap_s=out.log.get("type_swap_s", 0.0) + time.perf_counter() - t0,
        type_swap_moves=out.log.get("type_swap_moves", 0) + moves,
        type_swap_evaluations=out.log.get("type_swap_evaluations", 0) + evals,
    )
    return out


def former_type_values(G: np.ndarray, cap: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_model._type_values`` before the compare-exchange network (``np.sort`` along the
    operators, ``cumsum``)."""
    if G.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    n_op = G.shape[1]
    D = G.max(axis=1)
    if n_op < 2:
        return D, np.full(G.shape[0], -np.inf)
    gs = -np.sort(-G, axis=1)
    cs = np.cumsum(gs, axis=1)
    k = np.minimum(cap, n_op)
    S = cs[np.arange(G.shape[0]), np.maximum(k, 1) - 1]
    S = np.where(k >= 2, S, -np.inf)
    return D, S

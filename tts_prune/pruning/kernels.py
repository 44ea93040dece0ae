"""Pure pruning kernels: ``weight (out, in), statistics, sparsity -> mask`` (True = set to zero).

No hooks and no modules here; the calibration loop (``calibration.py``) gathers the statistics and
``prune.py`` applies the masks. All scores are computed in float32 whatever the weight dtype.
"""
from __future__ import annotations

import math

import torch


def parse_nm(nm: str | None) -> tuple[int, int] | None:
    """``"2:4"`` -> (2, 4): N weights set to zero in every group of M consecutive inputs.

    This is the convention of the Wanda and SparseGPT code (``prune_n`` zeros per ``prune_m``); for
    the hardware patterns 2:4 and 4:8 it coincides with "N of M kept".
    """
    if nm is None:
        return None
    try:
        n, m = (int(part) for part in str(nm).split(":"))
    except ValueError:
        raise ValueError(f"nm={nm!r} is not of the form 'N:M' (e.g. '2:4' or '4:8')") from None
    if not 0 < n < m:
        raise ValueError(f"nm={nm!r}: need 0 < N < M, e.g. '2:4' or '4:8'")
    return n, m


def nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Mask the ``n`` lowest scores in every group of ``m`` consecutive columns of ``score`` (out, in)."""
    out_features, in_features = score.shape
    if in_features % m:
        raise ValueError(f"in_features={in_features} is not divisible by M={m}; N:M sparsity needs whole groups")
    groups = score.reshape(out_features, in_features // m, m)  # (out, groups, m)
    lowest = torch.topk(groups, n, dim=-1, largest=False).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, lowest, True)
    return mask.reshape(out_features, in_features)


def _lowest_k(score: torch.Tensor, k: int | torch.Tensor, chunk_rows: int = 256) -> torch.Tensor:
    """Per row of ``score`` (rows, n): True at the ``k`` lowest entries, ties broken by lower column first.

    ``k`` is one count for every row or a (rows,) tensor of counts. Same result as
    ``torch.sort(score, stable=True).indices[:, :k]`` (the reference rule) but ~3x faster: a k-th value
    threshold, then the tied entries at the threshold taken in column order. The tie ranks are counted in
    chunks of ``chunk_rows`` rows in int32, so no int64 copy of the whole score matrix is ever made.
    """
    rows = score.shape[0]
    counts = torch.as_tensor(k, device=score.device).expand(rows).clamp(0, score.shape[1])  # (rows,)
    mask = torch.zeros_like(score, dtype=torch.bool)
    for r0 in range(0, rows, chunk_rows):
        part, need = score[r0:r0 + chunk_rows], counts[r0:r0 + chunk_rows]
        if int(need.max()) == 0:
            continue
        # kthvalue needs one k per call: rows with the same count are handled together.
        for value in need.unique().tolist():
            if value == 0:
                continue
            rows_v = (need == value).nonzero().squeeze(1)
            sub = part[rows_v]
            threshold = torch.kthvalue(sub, value, dim=1, keepdim=True).values  # (r, 1)
            below, tied = sub < threshold, sub == threshold
            room = value - below.sum(1, keepdim=True, dtype=torch.int32)    # ties still to take per row
            mask[r0 + rows_v] = below | (tied & (tied.cumsum(1, dtype=torch.int32) <= room))
    return mask


def row_counts(score: torch.Tensor, sparsity: float, rounding: str = "floor") -> torch.Tensor:
    """How many weights each row of ``score`` (rows, n) loses: (rows,) int64.

    ``"floor"`` is the Wanda/SparseGPT reference rule, ``floor(n x s)`` in every row, which leaves the
    matrix short of its target by up to one weight per row (0.191 instead of 0.2 on 64-wide inputs).
    ``"exact"`` removes ``round(rows x n x s)`` weights in all: every row loses ``floor(n x s)`` and the
    remainder goes, one weight each, to the rows whose next-lowest score is smallest (among masks with
    per-row counts differing by at most one, that choice prunes the least total score).
    """
    if rounding not in ("exact", "floor"):
        raise ValueError(f"rounding={rounding!r} is unknown; allowed: 'exact' or 'floor'")
    rows, n = score.shape
    base = int(n * sparsity)
    counts = torch.full((rows,), base, dtype=torch.long, device=score.device)
    if rounding == "floor" or base >= n:
        return counts
    extra = min(round(rows * n * sparsity) - rows * base, rows)
    if extra > 0:
        next_lowest = torch.kthvalue(score, base + 1, dim=1).values  # (rows,) cost of one more weight
        order = torch.sort(next_lowest, stable=True).indices        # ties: lower row first
        counts[order[:extra]] += 1
    return counts


def row_mask(score: torch.Tensor, sparsity: float, rounding: str = "floor") -> torch.Tensor:
    """Mask the lowest scores of every row: ``floor(in x s)`` each, or exactly ``round(numel x s)`` in all
    (see :func:`row_counts`); ties broken by column order."""
    return _lowest_k(score, row_counts(score, sparsity, rounding))


def matrix_mask(score: torch.Tensor, sparsity: float, count: int | None = None) -> torch.Tensor:
    """Mask the ``floor(numel x s)`` lowest scores of the whole matrix (or exactly ``count`` of them)."""
    k = int(score.numel() * sparsity) if count is None else count
    return _lowest_k(score.reshape(1, -1), k).reshape(score.shape)


def magnitude_mask(weight: torch.Tensor, sparsity: float, scope: str = "matrix",
                   nm: tuple[int, int] | None = None, rounding: str = "floor") -> torch.Tensor:
    """Magnitude pruning: drop the smallest |W| per matrix or per output row (or N:M per group).

    The classic baseline (Han et al., "Learning both Weights and Connections", arXiv 1506.02626), as
    used by Wanda (arXiv 2306.11695) for comparison; needs no data.
    """
    score = weight.detach().float().abs()
    if nm is not None:
        return nm_mask(score, *nm)
    if scope == "row":
        return row_mask(score, sparsity, rounding)
    return matrix_mask(score, sparsity, None if rounding == "floor" else round(score.numel() * sparsity))


def wanda_score(weight: torch.Tensor, sq_norm: torch.Tensor) -> torch.Tensor:
    """|W_ij| * ||X_j||_2 with ``sq_norm`` (in,) the summed squares of each input feature."""
    return weight.detach().float().abs() * sq_norm.float().sqrt().unsqueeze(0)


def wanda_mask(weight: torch.Tensor, sq_norm: torch.Tensor, sparsity: float,
               nm: tuple[int, int] | None = None, rounding: str = "floor", scope: str = "row") -> torch.Tensor:
    """Wanda: "A Simple and Effective Pruning Approach for Large Language Models" (Sun et al.,
    arXiv 2306.11695). Score |W| x ||X||_2, prune the lowest per output row (or N:M per group);
    ``rounding="floor"`` is the reference's ``floor(in x s)`` per row, ``"exact"`` see :func:`row_counts`.
    ``scope="matrix"`` ranks the scores over the whole matrix instead, as the LayerIF pruning of arXiv
    2604.25098 (``prune_wanda_influence``: top-k of ``floor(numel x s)`` over the flattened Wanda metric)."""
    score = wanda_score(weight, sq_norm)
    if nm is not None:
        return nm_mask(score, *nm)
    if scope == "matrix":
        return matrix_mask(score, sparsity, None if rounding == "floor" else round(score.numel() * sparsity))
    return row_mask(score, sparsity, rounding)


def outlier_ratio(score: torch.Tensor, m: float = 5.0) -> float:
    """OWL's layer-wise outlier ratio: share of scores above ``m`` x their mean (arXiv 2310.05175)."""
    score = score.float()
    return float((score > m * score.mean()).float().mean())


def _inverse_cholesky_(H: torch.Tensor) -> torch.Tensor:
    """Upper Cholesky factor U of H^-1 (H^-1 = U^T U), written over ``H`` (in, in) float32; returns H.

    SparseGPT's ``cholesky(cholesky_inverse(cholesky(H)), upper=True)``. On the CPU the three LAPACK
    steps (potrf, potri, potrf) run in place on H's storage, so no second (in, in) matrix is ever
    allocated (2.4 GB saved for an 8B model's down_proj). H is symmetric, so its row-major storage is
    also H in column-major order: LAPACK's lower triangle is our upper one, and the lower Cholesky
    factor L2 of H^-1 (stored column-major) reads row-major as L2^T = U. Other devices use torch.
    """
    if H.device.type != "cpu":
        U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
        return H.copy_(U)
    from scipy.linalg import lapack

    a = H.numpy().T  # (in, in) Fortran-ordered view of the same memory
    for step, (name, call) in enumerate((("potrf", lambda x: lapack.spotrf(x, lower=1, clean=0, overwrite_a=1)),
                                         ("potri", lambda x: lapack.spotri(x, lower=1, overwrite_c=1)),
                                         ("potrf", lambda x: lapack.spotrf(x, lower=1, clean=0, overwrite_a=1)))):
        out, info = call(a)
        if info != 0:
            raise torch.linalg.LinAlgError(
                f"SparseGPT: LAPACK {name} (step {step + 1} of 3) failed with info={info}: the dampened Hessian is "
                "not positive definite; raise percdamp (e.g. 0.1) or use more calibration tokens")
        if out.ctypes.data != a.ctypes.data:  # LAPACK may only skip the copy for suitably laid out input
            a[...] = out
    return H.triu_()


_UPDATE_COLUMNS = 2048  # columns per chunk of SparseGPT's trailing update (out x 2048 floats of scratch)


@torch.no_grad()
def sparsegpt_prune(weight: torch.Tensor, hessian: torch.Tensor, sparsity: float,
                    nm: tuple[int, int] | None = None, blocksize: int = 128,
                    percdamp: float = 0.01, rounding: str = "floor",
                    in_place: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT: "Massive Language Models Can Be Accurately Pruned in One-Shot" (Frantar & Alistarh,
    arXiv 2301.00774). Returns ``(new_weight, mask)``; the weight is updated (OBS) to compensate.

    Columns are processed in blocks of ``blocksize``; within each block the mask is chosen by the OBS
    saliency w^2 / [H^-1]_jj^2 over the whole (out, blocksize) slice (the reference's adaptive mask
    selection), or per group of M for N:M, and every pruned
    weight's error is spread over the not-yet-processed columns through the upper Cholesky factor of
    H^-1. ``hessian`` is 2 X X^T / tokens (in, in); ``percdamp`` of its mean diagonal is added.

    ``rounding="floor"`` prunes ``floor(out x blocksize x s)`` in every block, as the reference; ``"exact"``
    gives block b the difference of ``round(out x end_b x s)`` between its end and its start column, so the
    matrix loses exactly ``round(numel x s)`` weights. With ``in_place=True`` a float32 ``weight`` is
    updated in place (and returned) and a float32 ``hessian`` is dampened and factorised in its own storage,
    which is garbage afterwards (the caller drops it): peak memory is then the weight, its Hessian, a bool
    mask and (out, 2048) floats of scratch; with ``in_place=False`` neither input is touched.
    """
    W = weight.detach()
    if not (in_place and W.dtype == torch.float32):
        W = W.clone().float()  # (out, in)
    out_features, columns = W.shape
    H = hessian.detach()
    if not (in_place and H.dtype == torch.float32):
        H = H.clone().float()
    dead = torch.diag(H) == 0  # inputs never active: their weights cannot matter
    H[dead, dead] = 1
    W[:, dead] = 0
    H.diagonal().add_(percdamp * torch.mean(torch.diag(H)))  # dampen in place: no (in, in) eye
    Hinv = _inverse_cholesky_(H)
    diag = torch.diag(Hinv).clone()  # (in,)
    mask = torch.zeros_like(W, dtype=torch.bool)
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        W1, Hinv1 = W[:, i1:i2].clone(), Hinv[i1:i2, i1:i2]
        Q1, Err1 = torch.zeros_like(W1), torch.zeros_like(W1)
        if nm is None:
            saliency = W1 ** 2 / diag[i1:i2].reshape(1, -1) ** 2
            count = None if rounding == "floor" else (round(out_features * i2 * sparsity)
                                                      - round(out_features * i1 * sparsity))
            mask1 = matrix_mask(saliency, sparsity, count)  # block-wide threshold, as the reference
        else:
            mask1 = torch.zeros_like(W1, dtype=torch.bool)
        for i in range(i2 - i1):
            w, d = W1[:, i], Hinv1[i, i]
            if nm is not None and i % nm[1] == 0:
                group = W1[:, i:i + nm[1]] ** 2 / diag[i1 + i:i1 + i + nm[1]].reshape(1, -1) ** 2
                mask1.scatter_(1, i + torch.topk(group, nm[0], dim=1, largest=False).indices, True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        mask[:, i1:i2] = mask1
        for c1 in range(i2, columns, _UPDATE_COLUMNS):  # lazy batch update, in column chunks: no (out, in) temp
            c2 = min(c1 + _UPDATE_COLUMNS, columns)
            W[:, c1:c2] -= Err1 @ Hinv[i1:i2, c1:c2]
    return W.to(weight.dtype), mask


def esd(weight: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of W^T W (squared singular values of the weight), ascending, float32, exact zeros dropped."""
    eigs = torch.sort(torch.linalg.svdvals(weight.detach().float()) ** 2).values
    return eigs[eigs > 0]


def hill_alpha(weight: torch.Tensor, xmin_pos: int = 2) -> float:
    """Heavy-tail exponent of the weight's empirical spectral density (eigenvalues of W^T W), xmin fixed.

    Hill / maximum-likelihood power-law estimator alpha = 1 + n / sum(log(lambda_i / lambda_min)) over
    the n eigenvalues above ``lambda_min``, with lambda_min the median nonzero eigenvalue
    (``xmin_pos=2``; WeightWatcher's and AlphaPruning's ``fix_fingers='xmin_mid'``, their ``alpha_mid``).
    Eigenvalues below 1e-5 are dropped first. Not AlphaPruning's default: see :func:`alpha_peak`.
    """
    eigs = esd(weight)
    eigs = eigs[eigs > 1e-5]
    if eigs.numel() < 2:
        return math.nan
    i = int(eigs.numel() / xmin_pos)
    logs = torch.log(eigs)
    n = eigs.numel() - i
    return float(1 + n / (logs[i:].sum() - n * logs[i]))


def alpha_peak(weight: torch.Tensor, bins: int = 100) -> float:
    """AlphaPruning's default heavy-tail exponent, ``alpha_peak`` (Lu et al., arXiv 2410.10912, its
    ``net_esd_estimator(fix_fingers='xmin_peak')``, itself WeightWatcher's power-law fit).

    For every candidate xmin among the eigenvalues (ascending) in the window around the peak of the
    log10-ESD histogram (``bins`` bins; peak = left edge of the fullest bin), fit alpha by maximum
    likelihood (Hill) on the eigenvalues >= xmin and keep the fit whose Kolmogorov-Smirnov distance
    D = max_i |1 - (lambda_i / xmin)^(1 - alpha) - i / n| between the fitted and empirical tail CDFs is
    smallest (first one on ties; fits with alpha <= 1 get D = 1). The window's upper end is 1.5 x peak;
    its lower end is ``log10(0.95 x peak)``, a log-scale number compared with eigenvalues: that is what
    both reference codes do, kept so that the exponents match theirs. Computed in float32 as they do.
    """
    eigs = esd(weight)
    if eigs.numel() < 2:
        return math.nan
    logs = torch.log(eigs)
    log10 = torch.log10(eigs)
    low, high = log10.min(), log10.max()
    counts = torch.histc(log10, bins, min=float(low), max=float(high))
    peak = 10 ** torch.linspace(float(low), float(high), bins + 1)[torch.argmax(counts)]
    xmin_low, xmin_high = float(torch.log10(0.95 * peak)), float(1.5 * peak)
    total = eigs.numel()
    best_alpha, best_d = 0.0, 1.0  # reference initial values: alphas = 0, Ds = 1
    for i in range(total - 1):
        xmin = eigs[i]
        if xmin < xmin_low:
            continue
        if xmin > xmin_high:
            break
        n = total - i
        alpha = 1 + n / (logs[i:].sum() - n * logs[i])
        d = 1.0
        if alpha > 1:
            seq = torch.arange(n, dtype=torch.float32)
            d = float(torch.max(torch.abs(1 - (eigs[i:] / xmin) ** (-alpha + 1) - seq / n)))
        if d < best_d or i == 0:  # argmin over all slots: the first minimum, slot 0 when no D < 1
            best_alpha, best_d = float(alpha), d
    return best_alpha


ALPHA_ESTIMATORS = {"peak": alpha_peak, "median": hill_alpha}  # AlphaPruning's alpha_peak / alpha_mid

"""TOPLOC activation commitments (Ong et al. 2025, arXiv 2501.16007), implemented here.

A commitment binds the top-k (k = 128) entries, by magnitude, of the last
hidden state of a chunk of tokens: the prompt is one chunk, then every 32
generated tokens. The chunk's hidden states are flattened (tokens x hidden,
row-major, in bfloat16); the top-k indices ``x`` and the bfloat16 bit patterns
``y`` of their values are interpolated by the polynomial of degree < k over
GF(65497) with ``P(x mod m) = y`` (``m`` the largest modulus <= 65497 that
keeps the indices distinct). The commitment is ``m`` then the k monomial
coefficients (ascending), each as 2 big-endian bytes: 2 + 2k = 258 bytes, the
byte format of the reference implementation (PrimeIntellect-ai/toploc,
``ProofPoly.to_bytes``), so commitments made by either check with the other.

Checking re-runs the prefill with the claimed weights, recomputes each
chunk's top-k indices, evaluates the committed polynomial there (an index
outside the committed set gives an unrelated value) and compares bfloat16
exponents (count of mismatches) and 7-bit mantissas (mean and median absolute
difference where the exponents agree), as the reference does.

Interpolation is vectorised (numpy, int64, exact): with ``M(x) = prod(x - x_i)``
and ``w_i = 1 / M'(x_i)``, the coefficients are ``H . (V . (y * w))`` where
``V[t, i] = x_i**t`` and ``H[k, t] = M[k + 1 + t]`` (Lagrange through the
quotients ``M / (x - x_i)``); every product is < 2**32 and every sum of k of
them < 2**39, so int64 matrix products are exact before the final reduction.
Several commitments are encoded in one call (stacked), which is how capture
uses it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PRIME", "TOPK", "CHUNK", "COMMITMENT_BYTES", "CommitmentError", "ChunkCheck",
           "encode", "encode_many", "decode", "evaluate", "chunk_bounds", "commit_hidden", "check_hidden",
           "to_b64", "from_b64"]

PRIME = 65497
"""The field GF(65497) of the reference implementation (the largest prime below 2**16 - 38)."""
TOPK = 128
"""Hidden-state entries committed per chunk."""
CHUNK = 32
"""Generated tokens per commitment (the prompt is one more)."""
COMMITMENT_BYTES = 2 + 2 * TOPK
"""258: a 2-byte modulus and 128 2-byte coefficients."""


class CommitmentError(ValueError):
    """A commitment is malformed (wrong length, not base64, bad modulus or coefficient)."""


_INV: np.ndarray | None = None


def _inverses() -> np.ndarray:
    """Table of multiplicative inverses mod PRIME (index 0 unused), by Fermat, vectorised."""
    global _INV
    if _INV is None:
        a = np.arange(PRIME, dtype=np.int64)
        result = np.ones(PRIME, dtype=np.int64)
        e = PRIME - 2
        while e:
            if e & 1:
                result = result * a % PRIME
            a = a * a % PRIME
            e >>= 1
        _INV = result
    return _INV


_TOEPLITZ: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _toeplitz_index(L: int) -> tuple[np.ndarray, np.ndarray]:
    """Gather indices and mask (L, 2L) of the Toeplitz matrix T[i, n] = b[n - i] (0 outside 0 <= n - i < L)."""
    got = _TOEPLITZ.get(L)
    if got is None:
        idx = np.arange(2 * L)[None, :] - np.arange(L)[:, None]
        valid = ((idx >= 0) & (idx < L)).astype(np.float64)
        got = _TOEPLITZ[L] = (np.clip(idx, 0, L - 1), valid)
    return got


def _polymul_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Products of polynomial pairs (ascending coefficients, float64 (..., L) each, entries < PRIME) mod PRIME, length 2L
    (the last coefficient 0): short factors as one batched product with b's Toeplitz matrix, out[n] = sum_i a[i] b[n - i]
    (exact in float64: each sum has at most L products below 2**32, far below 2**53); long ones by FFT, rounded."""
    L = a.shape[-1]
    if L >= 32:  # long factors: FFT convolution, rounded (error bound ~ 8 * 2**-52 * L * PRIME**2 < 1e-3 for L <= 128)
        n = 2 * L
        prod = np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n), n)
        return np.fmod(np.rint(prod), PRIME)
    idx, valid = _toeplitz_index(L)
    toeplitz = b[..., idx] * valid                                         # (..., L, 2L)
    return np.fmod(np.matmul(a[..., None, :], toeplitz)[..., 0, :], PRIME)


def _master(x: np.ndarray) -> np.ndarray:
    """Coefficients (ascending, length k+1) of prod_i (X - x_i), for each row of x (B, k), by a product tree."""
    B, k = x.shape
    size = 1 << (k - 1).bit_length()
    # leaves: (X - x_i) as [-x_i, 1]; pad with the constant polynomial 1 ([1, 0])
    polys = np.zeros((B, size, 2), dtype=np.float64)
    polys[:, :k, 0] = (-x) % PRIME
    polys[:, :k, 1] = 1
    polys[:, k:, 0] = 1
    while polys.shape[1] > 1:  # log2(k) levels, lengths 2, 4, ..., 2k
        polys = _polymul_pairs(polys[:, 0::2], polys[:, 1::2])
    return polys[:, 0, : k + 1].astype(np.int64)


def _powers(x: np.ndarray, n: int) -> np.ndarray:
    """V[b, t, i] = x[b, i]**t mod PRIME for t < n, by doubling."""
    B, k = x.shape
    V = np.ones((B, 1, k), dtype=np.int64)
    step = x[:, None, :] % PRIME  # x**1
    while V.shape[1] < n:
        V = np.concatenate([V, V * step % PRIME], axis=1)  # rows m..2m-1 = rows 0..m-1 times x**m
        step = step * step % PRIME
    return V[:, :n]


def interpolate(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Monomial coefficients (ascending) of the polynomials of degree < k with P(x[b, i]) = y[b, i] over GF(PRIME).

    ``x`` and ``y`` have shape (B, k); the x of a row must be distinct in [0, PRIME).
    """
    x = np.asarray(x, dtype=np.int64) % PRIME
    y = np.asarray(y, dtype=np.int64) % PRIME
    B, k = x.shape
    M = _master(x)                                        # (B, k+1)
    dM = (M[:, 1:] * np.arange(1, k + 1, dtype=np.int64)) % PRIME   # M' coefficients, (B, k)
    V = _powers(x, k)                                     # (B, k, k): V[b, t, i] = x_i**t
    dM_at = np.einsum("bt,bti->bi", dM, V) % PRIME        # M'(x_i)
    if (dM_at == 0).any():
        raise ValueError("interpolation points are not distinct")
    w = _inverses()[dM_at]
    s = np.einsum("bti,bi->bt", V, y * w % PRIME) % PRIME  # (B, k): sum_i y_i w_i x_i**t
    idx = np.arange(k)[:, None] + np.arange(k)[None, :] + 1           # H[k', t] = M[k'+1+t]
    Mpad = np.concatenate([M, np.zeros((B, k), dtype=np.int64)], axis=1)
    H = Mpad[:, idx]                                      # (B, k, k)
    return np.einsum("bkt,bt->bk", H, s) % PRIME


def evaluate(coeffs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(x) mod PRIME by Horner, vectorised over x (coefficients ascending)."""
    x = np.asarray(x, dtype=np.int64) % PRIME
    acc = np.zeros_like(x)
    for c in np.asarray(coeffs, dtype=np.int64)[::-1]:
        acc = (acc * x + c) % PRIME
    return acc


def _injective_modulus(indices: np.ndarray) -> int:
    """The largest m <= PRIME (and > 2**15) under which the indices stay distinct, as the reference picks it."""
    if indices.size == 0 or int(indices.max()) < PRIME:
        return PRIME
    for m in range(PRIME, 2**15, -1):
        if np.unique(indices % m).size == indices.size:
            return m
    raise ValueError("no injective modulus for these indices")


def _topk(bits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest magnitudes; ties (common in bfloat16) go to the lower index, so the set is unique."""
    mag = (bits & 0x7FFF).astype(np.int64)  # a bfloat16 magnitude orders as its bits without the sign
    key = (mag << 32) - np.arange(bits.size, dtype=np.int64)
    return np.argpartition(-key, k - 1)[:k].astype(np.int64)


def encode_many(chunks: Sequence[np.ndarray], k: int = TOPK) -> list[bytes]:
    """Commitments to the top-k entries of each flattened bfloat16 chunk, given as uint16 bit patterns.

    Each chunk is a 1-D array of bfloat16 bits (``tensor.view(torch.uint16)``)
    with at least k entries. Returns one ``2 + 2k``-byte commitment per chunk.
    """
    xs, ys, mods = [], [], []
    for bits in chunks:
        bits = np.asarray(bits, dtype=np.uint16).reshape(-1)
        if bits.size < k:
            raise ValueError(f"a chunk needs at least {k} values, got {bits.size}")
        idx = _topk(bits, k)
        m = _injective_modulus(idx)
        xs.append(idx % m)
        ys.append(bits[idx].astype(np.int64))
        mods.append(m)
    if not xs:
        return []
    coeffs = interpolate(np.stack(xs), np.stack(ys))
    out = []
    for m, c in zip(mods, coeffs):
        out.append(m.to_bytes(2, "big") + c.astype(">u2").tobytes())
    return out


def encode(bits: np.ndarray, k: int = TOPK) -> bytes:
    """One commitment (see ``encode_many``)."""
    return encode_many([bits], k)[0]


def decode(data: bytes, k: int = TOPK) -> tuple[int, np.ndarray]:
    """(modulus, coefficients) of a commitment.

    Raises:
        CommitmentError: not ``2 + 2k`` bytes, a modulus outside (2**15, 65497] or a coefficient >= 65497.
    """
    if not isinstance(data, (bytes, bytearray)) or len(data) != 2 + 2 * k:
        raise CommitmentError(f"an activation commitment is {2 + 2 * k} bytes, got {len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__}")
    m = int.from_bytes(data[:2], "big")
    if not 2**15 < m <= PRIME:
        raise CommitmentError(f"activation commitment modulus {m} is outside (32768, {PRIME}]")
    c = np.frombuffer(bytes(data[2:]), dtype=">u2").astype(np.int64)
    if (c >= PRIME).any():
        raise CommitmentError(f"activation commitment has a coefficient >= {PRIME}")
    return m, c


def to_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def from_b64(text: str, k: int = TOPK) -> bytes:
    """Bytes of a base64 commitment, checked (see ``decode``).

    Raises:
        CommitmentError: not a string, not base64, or malformed.
    """
    if not isinstance(text, str):
        raise CommitmentError(f"an activation commitment must be a base64 string, got {type(text).__name__}")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise CommitmentError("activation commitment is not valid base64") from None
    decode(raw, k)
    return raw


def chunk_bounds(prompt_tokens: int, output_tokens: int, chunk: int = CHUNK) -> list[tuple[int, int]]:
    """Token ranges [start, end) of the commitments of a generation: the prompt, then each ``chunk`` output tokens."""
    bounds = [(0, prompt_tokens)]
    for s in range(0, output_tokens, chunk):
        bounds.append((prompt_tokens + s, prompt_tokens + min(s + chunk, output_tokens)))
    return bounds


def _chunks_bits(hidden, bounds):
    """Flattened bfloat16 bits (numpy uint16) of hidden[start:end] for each range; hidden is (tokens, d) torch."""
    import torch

    h = hidden.detach().to(torch.bfloat16).contiguous().view(torch.uint16).cpu().numpy()
    return [h[s:e].reshape(-1) for s, e in bounds]


def commit_hidden(hidden, prompt_tokens: int, output_tokens: int, k: int = TOPK, chunk: int = CHUNK) -> list[bytes]:
    """Commitments for one sequence's last hidden state (torch tensor (tokens, d), tokens = prompt + output).

    Chunks with fewer than k values (tiny hidden sizes) commit to all of them padded by k - n zeros at distinct
    indices past the chunk; callers use models with hidden size * tokens >= k in practice.
    """
    bits = _chunks_bits(hidden, chunk_bounds(prompt_tokens, output_tokens, chunk))
    return encode_many([_pad(b, k) for b in bits], k)


def _pad(bits: np.ndarray, k: int) -> np.ndarray:
    if bits.size >= k:
        return bits
    return np.concatenate([bits, np.zeros(k - bits.size, dtype=np.uint16)])


@dataclass(frozen=True)
class ChunkCheck:
    """How one chunk's recomputed activations compare with its commitment.

    Attributes:
        exp_mismatches: top-k entries whose bfloat16 exponent (or sign) differs from the committed value (0..k).
        mant_err_mean, mant_err_median: absolute difference of the 7-bit mantissas where exponents agree
            (``2**64`` when none agree, as the reference reports it).
    """

    exp_mismatches: int
    mant_err_mean: float
    mant_err_median: float

    @property
    def exact(self) -> bool:
        return self.exp_mismatches == 0 and self.mant_err_mean == 0

    def to_dict(self) -> dict:
        return {"exp_mismatches": self.exp_mismatches, "mant_err_mean": self.mant_err_mean,
                "mant_err_median": self.mant_err_median}


def check_bits(bits: np.ndarray, commitment: bytes, k: int = TOPK) -> ChunkCheck:
    """Compare recomputed bfloat16 bits of one chunk with its commitment (see module docstring)."""
    m, coeffs = decode(commitment, k)
    bits = _pad(np.asarray(bits, dtype=np.uint16).reshape(-1), k)
    idx = _topk(bits, k)
    committed = evaluate(coeffs, idx % m).astype(np.uint16)
    mine = bits[idx]
    # sign and exponent: the top 9 bits; the reference compares the exponent, and a flipped sign is a change too
    exp_a, exp_b = committed >> 7, mine >> 7
    same = exp_a == exp_b
    errs = np.abs((committed & 0x7F).astype(np.int32) - (mine & 0x7F).astype(np.int32))[same]
    if errs.size == 0:
        return ChunkCheck(int((~same).sum()), float(2**64), float(2**64))
    return ChunkCheck(int((~same).sum()), float(errs.mean()), float(np.median(errs)))


def check_hidden(hidden, prompt_tokens: int, output_tokens: int, commitments: Sequence[bytes],
                 k: int = TOPK, chunk: int = CHUNK) -> list[ChunkCheck]:
    """Check one sequence's recomputed last hidden state against its commitments, chunk by chunk.

    Raises:
        CommitmentError: a malformed commitment, or a count that does not match the tokens.
    """
    bounds = chunk_bounds(prompt_tokens, output_tokens, chunk)
    if len(commitments) != len(bounds):
        raise CommitmentError(f"{len(commitments)} activation commitments for {prompt_tokens} prompt and"
                              f" {output_tokens} output tokens; expected {len(bounds)}")
    return [check_bits(b, c, k) for b, c in zip(_chunks_bits(hidden, bounds), commitments)]

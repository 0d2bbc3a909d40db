"""One Qwen3-ASR-1.7B decode step's kernels on random BF16 weights, through the backend op table (issue #6).

The ops and arguments are the ones csrc/model/decoder.c (attn_block, mlp_block with a device position) and
heads.c / asr.c (lm_head, argmax_at) enqueue for one token: norm_gemm q/k/v -> qkv_prep -> attention_at ->
o-proj gemm (accumulate) -> norm_mlp per layer, then the lm_head GEMV and the greedy pick. Used by
tests/test_cuda.py in child processes, so that each measurement runs under its own QA_CUDA_PDL and
QA_CUDA_GEMV_VARIANT settings (each variable is read once per process):

    python -c "import decode_layer; decode_layer.main()"      # prints one line: JSON {...}
    python -c "import decode_layer; decode_layer.main(900)"   # the attention at KV position 900

Timings replay CUDA graphs (no host launch cost, as the engine's recorded step). In a real step an op's weights
come from HBM: between two uses of a layer's weights the other 27 layers stream 2.8 GB through the 50 MB L2. So each
op's recording cycles over enough sets of the tensors it streams that one replay reads ROTATE bytes (4x the L2):
the COPIES layers, plus device copies of that op's tensors at other addresses (L2 keeps lines by address; the same
bits, so the outputs do not change), e.g. 25 o-proj weights of 8.4 MB, 9 down weights, 100 K/V caches for the
attention's 2 MB at position 500. 3 copies of a small op's weights (25 MB of o-proj) would stay in L2 across
replays and make its µs optimistic. `x_eager` / `x_graph`: the residual row after one layer run op by op and after
the same layer replayed from a recording, from the same inputs.
"""
import ctypes as C
import json

import numpy as np

from cuda_util import BF16, D2D, Cuda, Tensor, to_bf16_bits

D, QD, KD, F, H, HK, DH, V = 2048, 2048, 1024, 6144, 16, 8, 128, 151936
CTX, POS, COPIES, REPS, EPS, THETA = 1024, 500, 3, 24, 1e-6, 1e6
LAYER_BYTES = 2 * D * (QD + 2 * KD) + 2 * QD * D + 2 * 3 * D * F  # BF16 weights of one layer
CACHE_BYTES = 2 * CTX * KD  # one layer's BF16 K (or V) cache
ROTATE = 4 * (50 << 20)  # bytes one replay of an op's recording streams: 4x the H100 / H200 L2


class Step:
    """Device buffers and weights of the decode step (one backend, one 2 GiB block)."""

    def __init__(self, g, rng, pos=POS):
        self.g, self.rng, self.pos = g, rng, pos
        self.layers = [self._layer() for _ in range(COPIES)]
        self.x0 = (rng.standard_normal((1, D)) * 0.5).astype(np.float32)
        self.x = g.put(self.x0)
        self.x_start = g.put(self.x0)
        # API 8, as decoder.c takes them: q | k | v of one row from one GEMM, q prepared into its own buffer
        self.qkv, self.q, self.a = g.empty((1, QD + 2 * KD)), g.empty((1, QD)), g.empty((1, QD))
        self.k, self.v = self.qkv + 4 * QD, self.qkv + 4 * (QD + KD)
        self.gu = g.empty((1, 2 * F))
        self.state = g.put(np.array([pos, 0, 0, 0], np.int32))
        self.head = self._weight(V, D)
        self.logits, self.tok, self.ids = g.empty((1, V)), g.empty(1, np.int32), g.empty(64, np.int32)

    def _weight(self, n, k):
        return self.g.tensor(self._w(n, k), BF16)

    def _w(self, n, k):
        return self.rng.standard_normal((n, k), dtype=np.float32) / np.float32(k)

    def _cache(self):  # BF16 K or V rows of one layer, all CTX rows filled (attention reads rows 0..pos)
        return self.g.put(to_bf16_bits(self.rng.standard_normal((CTX, KD)).astype(np.float32)))

    def _norm(self, n):
        return self.g.tensor((1 + 0.1 * self.rng.standard_normal(n)).astype(np.float32))

    def _layer(self):  # q/k/v and gate/up adjacent, as the loader places them
        q, k, v = self.g.joined([self._w(QD, D), self._w(KD, D), self._w(KD, D)], BF16)
        gw, uw = self.g.joined([self._w(F, D), self._w(F, D)], BF16)
        return dict(q=q, k=k, v=v, o=self._weight(D, QD), g=gw, u=uw, d=self._weight(D, F), in_norm=self._norm(D),
                    post_norm=self._norm(D), q_norm=self._norm(DH), k_norm=self._norm(DH), kc=self._cache(),
                    vc=self._cache())

    # ---- the ops of one layer, as decoder.c enqueues them -----------------------------------------

    def project(self, L):
        Ws = (C.POINTER(Tensor) * 3)(*[C.pointer(L[n]) for n in "qkv"])
        self.g.call("norm_gemm", (C.c_void_p * 3)(self.qkv, self.k, self.v), QD + 2 * KD, self.x, L["in_norm"], EPS,
                    Ws, (C.c_int64 * 3)(QD, KD, KD), 3, 1, D, 0)

    def prep(self, L):
        self.g.call("qkv_prep", self.q, self.qkv, QD + 2 * KD, L["kc"], L["vc"], BF16, self.k, self.v, QD + 2 * KD,
                    L["q_norm"], L["k_norm"], 1, H, HK, DH, 0, self.state, CTX, THETA, EPS)

    def attend(self, L):
        self.g.call("attention_at", self.a, self.q, L["kc"], L["vc"], BF16, 1, CTX, H, HK, DH, self.state)

    def oproj(self, L):
        self.g.call("gemm", self.x, self.a, L["o"], None, 1, QD, D, 0, 1)

    def mlp(self, L):
        self.g.call("norm_mlp", self.x, L["post_norm"], EPS, L["g"], L["u"], L["d"], self.gu, 1, D, F)

    def down(self, L):  # norm_mlp's second kernel alone (the gemv of silu(g)·u), to split its time
        self.g.call("gemm", self.x, self.gu, L["d"], None, 1, F, D, 0, 1)

    def layer(self, L):
        for op in (self.project, self.prep, self.attend, self.oproj, self.mlp):
            op(L)

    def lm_head(self, _):
        self.g.call("gemm", self.logits, self.x, self.head, None, 1, D, V, 0, 0)

    def pick(self, _):
        eos = (C.c_int32 * 2)(151643, 151645)
        self.g.call("argmax_at", self.ids, 64, self.tok, self.logits, V, eos, 2, self.state)

    # ---- measurements ----------------------------------------------------------------------------

    def us_per_call(self, body, reps=REPS, groups=(), nbytes=0):
        """body(layer) recorded max(reps, sets) times, cycling over sets of layer tensors that together hold at
        least ROTATE bytes of what one call streams (nbytes, from the tensors of groups: tuples of keys adjacent
        in device memory), replayed; µs per call. The copies made for it are given back afterwards."""
        g = self.g
        used = g.used
        sets = list(self.layers)
        while nbytes and len(sets) * nbytes < ROTATE:
            sets.append(self._clone(self.layers[len(sets) % COPIES], groups))
        body(self.layers[0])  # outside the recording: scratch binding, lazy kernel loading
        us = g.replay_seconds(lambda i: body(sets[i % len(sets)]), max(reps, len(sets))) * 1e6
        g.used = used  # the replays are done (replay_seconds syncs): the copies' memory is free again
        return us

    def _clone(self, L, groups):
        """L with the tensors of each group copied, as one span, to new device addresses (the same bits)."""
        L = dict(L)
        for group in groups:
            lo = min(_addr(L[k]) for k in group)
            hi = max(_addr(L[k]) + _nbytes(L[k]) for k in group)
            p = self.g.take(hi - lo)
            self.g.call("copy", p, lo, hi - lo, D2D)
            for k in group:
                L[k] = _moved(L[k], p - lo)
        return L

    def layer_once(self, recorded):
        """The residual row after layer 0 from x0, op by op or replayed from a recording."""
        g = self.g
        g.call("copy", self.x, self.x_start, 4 * D, 2)
        if recorded:
            g.call("graph_begin")
            self.layer(self.layers[0])
            g.call("graph_end", 1, self.x_start)
            g.call("graph_launch", 1)
        else:
            self.layer(self.layers[0])
        return g.get(self.x, (1, D))


GROUPS = dict(qkv=("q", "k", "v"), gu=("g", "u"), o=("o",), d=("d",), kc=("kc",), vc=("vc",))  # adjacent tensors


def _addr(t):
    return t if isinstance(t, int) else t.data


def _nbytes(t):  # a weight Tensor, or a raw K / V cache pointer
    return CACHE_BYTES if isinstance(t, int) else int(np.prod(t.shape[:t.ndim])) * (2 if t.dtype == BF16 else 4)


def _moved(t, delta):
    if isinstance(t, int):
        return t + delta
    m = Tensor(t.data + delta, t.dtype, t.ndim)
    m.shape[:] = t.shape[:]
    return m


def timings(g, rng, pos=POS):
    """{name: [µs per call, weight bytes per call]} of each decode op and of a whole layer, plus the layer's
    outputs op by op and recorded (lists of floats), with the attention at KV position pos."""
    s = Step(g, rng, pos)
    kv = 2 * 2 * (pos + 1) * KD  # the K and V rows 0..pos the attention reads
    # name, body, weight bytes (GB/s column), the tensors it streams (rotated: Step.us_per_call) and their bytes
    ops = [("q/k/v norm_gemm", s.project, 2 * D * (QD + 2 * KD), ("qkv",), 2 * D * (QD + 2 * KD)),
           ("qkv_prep", s.prep, 0, (), 0), (f"attention_at pos {pos}", s.attend, 0, ("kc", "vc"), kv),
           ("o-proj gemv", s.oproj, 2 * QD * D, ("o",), 2 * QD * D),
           ("norm_mlp", s.mlp, 2 * 3 * D * F, ("gu", "d"), 2 * 3 * D * F),
           ("mlp down gemv alone", s.down, 2 * D * F, ("d",), 2 * D * F),
           ("layer (5 ops)", s.layer, LAYER_BYTES, (), LAYER_BYTES),
           ("lm_head gemv", s.lm_head, 2 * V * D, (), 0), ("argmax_at", s.pick, 0, (), 0)]
    out = {name: [s.us_per_call(body, REPS if nbytes < 2 * V * D else 4, [GROUPS[k] for k in keys], streamed), nbytes]
           for name, body, nbytes, keys, streamed in ops}
    return dict(times=out, x_eager=s.layer_once(False).ravel().tolist(),
                x_graph=s.layer_once(True).ravel().tolist())


def main(pos=POS):
    g = Cuda(block_bytes=2000 << 20)  # ~1 GB of layers and lm_head, up to ~0.45 GB of copies for one op
    g.reset()
    print("JSON " + json.dumps(timings(g, np.random.default_rng(6), pos)))

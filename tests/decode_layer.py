"""One Qwen3-ASR-1.7B decode step's kernels on random BF16 weights, through the backend op table (issue #6).

The ops and arguments are the ones csrc/model/decoder.c (attn_block, mlp_block with a device position) and
heads.c / asr.c (lm_head, argmax_at) enqueue for one token: norm_gemm q/k/v -> qkv_prep -> attention_at ->
o-proj gemm (accumulate) -> norm_mlp per layer, then the lm_head GEMV and the greedy pick. Used by
tests/test_cuda.py in child processes, so that each measurement runs under its own QA_CUDA_PDL and
QA_CUDA_GEMV_VARIANT settings (each variable is read once per process):

    python -c "import decode_layer; decode_layer.main()"      # prints one line: JSON {...}
    python -c "import decode_layer; decode_layer.main(900)"   # the attention at KV position 900

Timings replay CUDA graphs (no host launch cost, as the engine's recorded step) over COPIES sets of layer
weights, so the weights come from HBM and not from L2. `x_eager` / `x_graph`: the residual row after one
layer run op by op and after the same layer replayed from a recording, from the same inputs.
"""
import ctypes as C
import json

import numpy as np

from cuda_util import BF16, Cuda, Tensor, to_bf16_bits

D, QD, KD, F, H, HK, DH, V = 2048, 2048, 1024, 6144, 16, 8, 128, 151936
CTX, POS, COPIES, REPS, EPS, THETA = 1024, 500, 3, 24, 1e-6, 1e6
LAYER_BYTES = 2 * D * (QD + 2 * KD) + 2 * QD * D + 2 * 3 * D * F  # BF16 weights of one layer


class Step:
    """Device buffers and weights of the decode step (one backend, one 1.3 GiB block)."""

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

    def us_per_call(self, body, reps=REPS):
        """body(layer) recorded reps times (cycling the weight copies), replayed; µs per call."""
        g = self.g
        body(self.layers[0])  # outside the recording: scratch binding, lazy kernel loading
        return g.replay_seconds(lambda i: body(self.layers[i % COPIES]), reps) * 1e6

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


def timings(g, rng, pos=POS):
    """{name: [µs per call, weight bytes per call]} of each decode op and of a whole layer, plus the layer's
    outputs op by op and recorded (lists of floats), with the attention at KV position pos."""
    s = Step(g, rng, pos)
    ops = [("q/k/v norm_gemm", s.project, 2 * D * (QD + 2 * KD)), ("qkv_prep", s.prep, 0),
           (f"attention_at pos {pos}", s.attend, 0), ("o-proj gemv", s.oproj, 2 * QD * D),
           ("norm_mlp", s.mlp, 2 * 3 * D * F), ("mlp down gemv alone", s.down, 2 * D * F),
           ("layer (5 ops)", s.layer, LAYER_BYTES),
           ("lm_head gemv", s.lm_head, 2 * V * D), ("argmax_at", s.pick, 0)]
    out = {name: [s.us_per_call(body, REPS if nbytes < 2 * V * D else 4), nbytes] for name, body, nbytes in ops}
    return dict(times=out, x_eager=s.layer_once(False).ravel().tolist(),
                x_graph=s.layer_once(True).ravel().tolist())


def main(pos=POS):
    g = Cuda(block_bytes=1400 << 20)
    g.reset()
    print("JSON " + json.dumps(timings(g, np.random.default_rng(6), pos)))

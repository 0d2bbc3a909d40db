"""ctypes access to the CUDA backend (libqa_cuda.so) for the per-op GPU tests.

Mirrors csrc/backend/backend.h (qa_backend), csrc/backend/cuda_api.h (qa_cuda_api, qa_cuda_probe,
qa_cuda_mem_stats), csrc/core/status.h (qa_err) and csrc/model/weights.h (qa_tensor); the table
versions are checked against the headers, so a layout change fails loudly instead of misreading.
Device memory: ONE block from be.mem_alloc (like the arena), carved with a bump pointer.
"""
import ctypes as C
import os
import re
import time
import zlib

import numpy as np
import pytest

from conftest import REPO

# QA_CUDA_LIB: another library exporting the same table (e.g. a shim over the CPU backend, to dry-run these
# op tests and their references on a machine without a GPU)
LIB = os.environ.get("QA_CUDA_LIB") or os.path.join(REPO, "qwen3align", "libqa_cuda.so")
F32, BF16 = 0, 1
H2D, D2H, D2D = 0, 1, 2


def _header_int(path, name):
    m = re.search(rf"#define {name} (\d+)", open(os.path.join(REPO, path)).read())
    return int(m.group(1))


class Err(C.Structure):
    _fields_ = [("code", C.c_int), ("msg", C.c_char * 1024), ("file", C.c_char_p), ("line", C.c_int),
                ("needed", C.c_size_t), ("available", C.c_size_t)]


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int), ("ndim", C.c_int), ("shape", C.c_int64 * 4)]


class Dims(C.Structure):
    _fields_ = [(n, C.c_int64) for n in ("max_kv", "max_q", "max_heads", "max_gemm_k", "max_gemm_n", "max_im2col")]


class Probe(C.Structure):
    _fields_ = [("driver_version", C.c_int), ("runtime_version", C.c_int), ("device_count", C.c_int),
                ("name", C.c_char * 256), ("cc_major", C.c_int), ("cc_minor", C.c_int), ("total_mem", C.c_size_t)]


class MemStats(C.Structure):
    _fields_ = [("device_allocs", C.c_uint64), ("host_allocs", C.c_uint64), ("free_at_open", C.c_size_t),
                ("free_after_handles", C.c_size_t), ("total", C.c_size_t), ("pinned_bytes", C.c_size_t),
                ("graph_instantiations", C.c_uint64), ("graph_bytes", C.c_size_t), ("gemm_plans", C.c_uint64)]


S, P, I64, VP = C.c_int, C.c_void_p, C.c_int64, C.c_void_p
EP = C.POINTER(Err)
BEP = C.c_void_p  # qa_backend * (we pass the address of our Backend struct)
TP = C.POINTER(Tensor)
_OPS = [  # (name, restype, argtypes after `be`) in backend.h order
    ("destroy", None, []),
    ("mem_alloc", S, [C.POINTER(C.c_void_p), C.c_size_t, EP]),
    ("mem_free", None, [P]),
    ("mem_info", S, [C.POINTER(C.c_size_t), C.POINTER(C.c_size_t), EP]),
    ("scratch_need", C.c_size_t, [C.POINTER(Dims)]),
    ("copy", S, [P, P, C.c_size_t, C.c_int, EP]),
    ("memset0", S, [P, C.c_size_t, EP]),
    ("sync", S, [EP]),
    ("gemm", S, [P, P, TP, TP, I64, I64, I64, C.c_int, C.c_int, EP]),
    # API 6: the decoder's RMSNorm fused into the GEMMs behind it; API 8: y[], ldy (0: contiguous), x, ...; norm_mlp's
    # one gate | up buffer [T, 2F]
    ("norm_gemm", S, [P, I64, P, TP, C.c_float, P, P, C.c_int, I64, I64, C.c_int, EP]),
    ("norm_mlp", S, [P, TP, C.c_float, TP, TP, TP, P, I64, I64, I64, EP]),
    # API 7: the encoder's LayerNorm fused into q/k/v and fc1: y[], ldy (API 8), x, ln_w, ln_b, eps, W[], b[], N[], n,
    # T, K, act
    ("ln_gemm", S, [P, I64, P, TP, TP, C.c_float, P, P, P, C.c_int, I64, I64, C.c_int, EP]),
    # API 8: the encoder's MLP: x, ln_w, ln_b, eps, W1, b1, W2, b2, f, T, E, F
    ("ln_mlp", S, [P, TP, TP, C.c_float, TP, TP, TP, TP, P, I64, I64, I64, EP]),
    ("layernorm", S, [P, P, TP, TP, I64, I64, C.c_float, EP]),
    ("rmsnorm", S, [P, P, TP, I64, I64, C.c_float, EP]),
    # API 8: qo [T, H*Dh], q, ldq, kdst, vdst, kv dtype, k, v, ldkv, q_norm, k_norm, T, H, Hk, Dh, pos0, pos (device
    # or None), max_rows, theta, eps
    ("qkv_prep", S, [P, P, I64, P, P, C.c_int, P, P, I64, TP, TP, I64, I64, I64, I64, I64, P, I64, C.c_float,
                     C.c_float, EP]),
    ("add_sinusoid", S, [P, I64, I64, I64, EP]),
    # kv dtype after v, then (API 8) the row strides ldq, ldkv (0: contiguous); API 8: out dtype after window
    ("attention", S, [P, P, P, P, C.c_int, I64, I64, I64, I64, I64, I64, I64, I64, C.c_int, I64, C.c_int, EP]),
    ("gemm_in_dtype", C.c_int, [TP, I64]),  # API 8: BF16 hand-off to a GEMM
    ("gemm_bf16x", S, [P, P, TP, TP, I64, I64, I64, C.c_int, EP]),
    ("gelu", S, [P, P, I64, EP]),
    ("add", S, [P, P, P, I64, EP]),
    ("mel_chunks", S, [P, P, I64, I64, I64, I64, I64, I64, EP]),
    ("conv2d", S, [P, P, TP, TP, TP, I64, I64, I64, I64, I64, C.c_int, EP]),
    # API 8: y, tmp, x, w1, b1, w2, N, Hi, Wi, C1, C2
    ("conv2d_pair", S, [P, P, P, TP, TP, TP, I64, I64, I64, I64, I64, EP]),
    ("chunk_flatten", S, [P, P, TP, I64, I64, I64, I64, EP]),
    ("embed", S, [P, TP, P, I64, EP]),
    ("argmax", S, [P, P, P, I64, I64, C.POINTER(C.c_int32), C.c_int, EP]),
    ("mel_tables", S, [P, P, EP]),
    ("log_mel", S, [P, P, I64, P, P, C.c_size_t, EP]),
    # API 4: decode steps with the position in backend memory, recorded steps
    ("attention_at", S, [P, P, P, P, C.c_int, I64, I64, I64, I64, I64, P, EP]),
    ("argmax_at", S, [P, I64, P, P, I64, C.POINTER(C.c_int32), C.c_int, P, EP]),
    ("step_advance", S, [P, EP]),
    ("graph_begin", S, [EP]),
    ("graph_end", S, [C.c_int, P, EP]),
    ("graph_launch", S, [C.c_int, EP]),
]


class Cancel(C.Structure):  # core/cancel.h qa_cancel
    _fields_ = [("check", C.c_void_p), ("ctx", C.c_void_p)]


class Backend(C.Structure):
    _fields_ = [("api_version", C.c_int), ("name", C.c_char_p), ("ctx", C.c_void_p), ("scratch", C.c_void_p),
                ("scratch_bytes", C.c_size_t), ("cancel", Cancel),
                ("dtype", C.c_int)] + [(n, C.CFUNCTYPE(r, BEP, *a)) for n, r, a in _OPS] + \
               [("graph_ready", C.CFUNCTYPE(C.c_int, BEP, C.c_int, P)),
                # API 9: a recording that loops on the device: state, tok, stop ids (host), n_stop, block
                ("graph_begin_loop", C.CFUNCTYPE(S, BEP, P, P, C.POINTER(C.c_int32), C.c_int, I64, EP)),
                ("decode_mode", C.c_int)]


class Api(C.Structure):
    _fields_ = [("version", C.c_int), ("init", C.CFUNCTYPE(S, BEP, C.c_int, EP)),
                ("probe", C.CFUNCTYPE(S, C.c_int, C.POINTER(Probe), EP)),
                ("mem_stats", C.CFUNCTYPE(None, BEP, C.POINTER(MemStats))),
                ("upload", C.CFUNCTYPE(S, BEP, P, P, C.c_size_t, EP)),
                ("mem_query", C.CFUNCTYPE(S, C.c_int, C.POINTER(C.c_size_t), C.POINTER(C.c_size_t), EP)),
                ("host_alloc", C.CFUNCTYPE(S, BEP, C.POINTER(C.c_void_p), C.c_size_t, EP)),
                ("host_free", C.CFUNCTYPE(None, BEP, P)),
                ("upload_rows", C.CFUNCTYPE(S, BEP, P, P, C.c_int, I64, I64, P, I64, EP)),
                ("upload_convert", C.CFUNCTYPE(S, BEP, P, C.c_int, P, C.c_int, C.c_size_t, P, C.c_size_t, EP))]


def load_api():
    """(api, None) or (None, reason) — never touches a GPU."""
    if not os.path.exists(LIB):
        return None, f"{LIB} not built (nvcc missing or QA_NO_CUDA at build time)"
    lib = C.CDLL(LIB)
    lib.qa_cuda_api_get.restype = C.POINTER(Api)
    api = lib.qa_cuda_api_get().contents
    want = _header_int("csrc/backend/cuda_api.h", "QA_CUDA_API_VERSION")
    if api.version != want:
        return None, f"libqa_cuda.so table version {api.version}, header {want}: rebuild"
    return api, None


def gpu_reason(device=0):
    """None when a usable GPU is visible, else why not (probe: driver, runtime, device count)."""
    api, why = load_api()
    if not api:
        return why
    pr, err = Probe(), Err()
    if api.probe(device, C.byref(pr), C.byref(err)) != 0:
        return err.msg.decode()
    return None


def to_bf16_bits(x):
    """float32 -> bfloat16 bit patterns, round to nearest even (torch's .to(torch.bfloat16))."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def bf16_round(x):
    return (to_bf16_bits(x).astype(np.uint32) << 16).view(np.float32)


class Cuda:
    """An opened CUDA backend with one device block and a bump allocator (reset per test)."""

    def __init__(self, block_bytes=512 << 20, device=0):
        api, why = load_api()
        assert api, why
        self.api = api
        self.be = Backend()
        self.err = Err()
        self.check(api.init(self.addr, device, C.byref(self.err)), "init")
        want = _header_int("csrc/backend/backend.h", "QA_BACKEND_API_VERSION")
        assert self.be.api_version == want, f"backend api {self.be.api_version}, header {want}"
        p = C.c_void_p()
        self.check(self.be.mem_alloc(self.addr, C.byref(p), block_bytes, C.byref(self.err)), "mem_alloc")
        self.block, self.size, self.used = p.value, block_bytes, 0

    @property
    def addr(self):
        return C.addressof(self.be)

    def check(self, status, what):
        if status != 0:
            raise AssertionError(f"{what}: status {status}: {self.err.msg.decode()} "
                                 f"({(self.err.file or b'?').decode()}:{self.err.line})")

    def call(self, op, *args):
        self.check(getattr(self.be, op)(self.addr, *args, C.byref(self.err)), op)

    def reset(self, scratch_dims=None):
        """Forget all buffers; carve a scratch of scratch_need(dims) first."""
        self.used = 0
        d = Dims(**(scratch_dims or dict(max_kv=4096, max_q=2048, max_heads=16, max_gemm_k=8192,
                                          max_gemm_n=8192, max_im2col=480 * 9 * 32 * 25)))
        need = self.be.scratch_need(self.addr, C.byref(d))
        self.be.scratch = self.take(need)
        self.be.scratch_bytes = need

    def take(self, nbytes):
        off = (self.used + 255) & ~255
        assert off + nbytes <= self.size, "test block too small"
        self.used = off + nbytes
        return self.block + off

    def put(self, arr):
        arr = np.ascontiguousarray(arr)
        p = self.take(arr.nbytes)
        self.call("copy", p, arr.ctypes.data, arr.nbytes, H2D)
        return p

    def empty(self, shape, dtype=np.float32, poison=True):
        """A device buffer filled with NaN (float) / -7 (int) so unwritten outputs show."""
        fill = np.full(shape, np.nan if np.dtype(dtype).kind == "f" else -7, dtype)
        return self.put(fill) if poison else self.take(fill.nbytes)

    def get(self, p, shape, dtype=np.float32):
        out = np.empty(shape, dtype)
        self.call("copy", out.ctypes.data, p, out.nbytes, D2H)
        return out

    def tensor(self, arr, dtype=F32):
        """A qa_tensor in device memory: BF16 (rounded) or F32 copy of arr."""
        arr = np.asarray(arr, np.float32)
        data = self.put(to_bf16_bits(arr) if dtype == BF16 else arr)
        t = Tensor(data, dtype, arr.ndim)
        for i, n in enumerate(arr.shape):
            t.shape[i] = n
        return t

    def joined(self, arrs, dtype=F32):
        """qa_tensors of the arrays arrs (2-D weights or 1-D biases), one after another in device memory (as the
        loader places q/k/v, gate/up and the encoder's q/k/v biases: backend.h norm_gemm's one-GEMM case)."""
        whole = self.tensor(np.concatenate([np.asarray(a, np.float32) for a in arrs]), dtype)
        out, off = [], 0
        for a in arrs:
            t = Tensor(whole.data + off, dtype, a.ndim)
            for i, n in enumerate(a.shape):
                t.shape[i] = n
            out.append(t)
            off += a.size * (2 if dtype == BF16 else 4)
        return out

    def apart(self, arrs, dtype=F32):
        """qa_tensors of the arrays arrs with a gap after each: tensors taken one after another are adjacent when
        their sizes are whole 256-byte blocks, which norm_gemm / norm_mlp / ln_gemm would run as ONE GEMM (the
        joined case); these always take one GEMM per weight."""
        out = []
        for a in arrs:
            out.append(self.tensor(a, dtype))
            self.take(256)
        return out

    def stats(self):
        st = MemStats()
        self.api.mem_stats(self.addr, C.byref(st))
        return st

    def mem_info(self):
        fr, tot = C.c_size_t(), C.c_size_t()
        self.call("mem_info", C.byref(fr), C.byref(tot))
        return fr.value, tot.value

    def replay_seconds(self, record, reps=1, launches=5):
        """Seconds per rep of record(i), i < reps, recorded once into graph slot 0 and replayed `launches` times
        after a warm-up replay (the kernels' own time, without the host's issuing)."""
        self.call("sync")
        self.call("graph_begin")
        for i in range(reps):
            record(i)
        self.call("graph_end", 0, self.block)
        self.call("graph_launch", 0)
        self.call("sync")
        t0 = time.perf_counter()
        for _ in range(launches):
            self.call("graph_launch", 0)
        self.call("sync")
        return (time.perf_counter() - t0) / launches / reps


# The fixtures of the GPU op tests (imported by each tests/test_cuda*.py that uses them): one backend per
# module, reset before each test, and inputs that are fresh per test but reproducible from its name (crc32, not
# hash(): str hashes are salted per process, so a failure could not be replayed).
@pytest.fixture(scope="module")
def cu():
    return Cuda()


@pytest.fixture
def g(cu):
    cu.reset()
    return cu


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))

/* step.c — the decode-step ops with the position in backend memory, on the CPU (backend.h, API 4).
 *
 * Contract (backend.h attention_at / argmax_at / step_advance, graph_*; qkv_prep's pos is read in qkv.c).
 * Backend memory is host memory here, so "read the position when the op runs" is a plain load: each op
 * reads the state and calls the host-position op of the same family, which makes the CPU the exact
 * reference the CUDA variants are compared with (tests/test_cuda.py through the CPU shim, and
 * QA_CPU_DECODE=steps in tests/test_asr_steps.py). The CPU has no graphs: decode_mode stays PLAIN
 * unless QA_CPU_DECODE=steps asks for the device-state loop (to test it), and graph_* refuse.
 */
#include "cpu.h"

qa_status qa_cpu_attention_at(qa_backend *be, float *out, const float *q, const void *k, const void *v,
                              qa_dtype kv_dtype, int64_t Tq, int64_t max_kv, int64_t H, int64_t Hk, int64_t Dh,
                              const int32_t *pos, qa_err *e)
{
    int64_t p = pos[0];
    if (p < 0 || p + Tq > max_kv)
        return QA_FAIL(e, QA_ERR_INTERNAL, "attention_at: position %lld + %lld rows outside the %lld-row cache",
                       (long long)p, (long long)Tq, (long long)max_kv);
    return qa_cpu_attention(be, out, q, k, v, kv_dtype, 0, 0, Tq, p + Tq, H, Hk, Dh, p, 1, 0, e);
}

qa_status qa_cpu_argmax_at(qa_backend *be, int32_t *ids, int64_t cap, int32_t *tok, const float *x, int64_t V,
                           const int32_t *suppress, int n_suppress, const int32_t *state, qa_err *e)
{
    int32_t i = state[QA_STEP_INDEX];
    int n = i < state[QA_STEP_MIN_NEW] ? n_suppress : 0;
    QA_TRY(qa_cpu_argmax(be, tok, NULL, x, 1, V, suppress, n, e));
    if (i >= 0 && i < cap)
        ids[i] = tok[0];
    return QA_OK;
}

qa_status qa_cpu_step_advance(qa_backend *be, int32_t *state, qa_err *e)
{
    state[QA_STEP_POS]++;
    state[QA_STEP_INDEX]++;
    return QA_OK;
}

qa_status qa_cpu_graph_begin(qa_backend *be, qa_err *e)
{
    return QA_FAIL(e, QA_ERR_INTERNAL, "graph_begin: the CPU backend records no graphs (decode_mode is not GRAPH)");
}

qa_status qa_cpu_graph_end(qa_backend *be, int slot, const void *key, qa_err *e)
{
    return QA_FAIL(e, QA_ERR_INTERNAL, "graph_end: the CPU backend records no graphs");
}

qa_status qa_cpu_graph_launch(qa_backend *be, int slot, qa_err *e)
{
    return QA_FAIL(e, QA_ERR_INTERNAL, "graph_launch: the CPU backend records no graphs");
}

int qa_cpu_graph_ready(const qa_backend *be, int slot, const void *key) { return 0; }

qa_status qa_cpu_graph_begin_loop(qa_backend *be, const int32_t *state, const int32_t *tok, const int32_t *stop,
                                  int n_stop, int64_t block, qa_err *e)
{
    return QA_FAIL(e, QA_ERR_INTERNAL, "graph_begin_loop: the CPU backend records no graphs (decode_mode is not LOOP)");
}

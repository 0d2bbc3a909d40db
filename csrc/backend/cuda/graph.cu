/* graph.cu — recorded decode steps: CUDA graphs captured from the context's stream (backend.h graph_*).
 *
 * Contract: cuda_ctx.cuh. Why: a decode step of Qwen3-ASR-1.7B is ~450 small launches; enqueued from
 * the host they cost ~10 ms per token, replayed as one graph they cost one launch (issue #6).
 * begin puts the stream into capture (cudaStreamCaptureModeThreadLocal, as PyTorch does: only this
 * thread is barred from unsafe calls such as cudaMalloc while capturing); the ops then enqueue as usual
 * — cuBLASLt records too, since its workspace is the arena view matmul.cu passes per call, and the
 * GEMMs' BF16 staging writes the fixed work area. end instantiates the graph into a slot and uploads
 * it (cudaGraphUpload), so the first launch does not set it up lazily during a request.
 * Memory: cudaGraphInstantiate / cudaGraphUpload take device memory from the driver for the executable
 * graph (node parameters, launch descriptors; kernels' memory is ours: the graph has no memory nodes),
 * outside the arena and outside cudaMalloc. We measure it as the cudaMemGetInfo drop around the two
 * calls (the driver reserves in 2 MiB pages, so it reads 0 or a few MiB) and count instantiations:
 * memory_report shows both, and load_models' warm-up records the one ASR step, so a request after
 * load instantiates nothing (tests/test_cuda.py checks the count). Graphs are destroyed at close.
 * Device loop (API 9, issue #6): launched once per token, the step graph leaves the GPU idle while the host
 * wakes at every block's copy back and launches again, and a block runs on past an EOS. begin_loop builds a
 * graph of one conditional WHILE node (CUDA 12.4+) and captures the step straight into its body
 * (cudaStreamBeginCaptureToGraph); end appends step.cu's step_continue kernel, which sets the node's
 * condition from the step state and the picked token, and instantiates the whole as one graph, measured and
 * counted like a step graph. The handle's default value 1, assigned at each launch, runs the body at least once.
 */
#include "cuda_ctx.cuh"

qa_status qa_cuda_graph_begin(qa_cuda_ctx *c, qa_err *e)
{
    if (c->capturing)
        return QA_FAIL(e, QA_ERR_INTERNAL, "graph_begin: a recording is already open");
    QA_CUDA_CHECK(e, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
    c->capturing = 1;
    return QA_OK;
}

qa_status qa_cuda_graph_begin_loop(qa_cuda_ctx *c, const qa_cu_loop *loop, qa_err *e)
{
    if (c->capturing)
        return QA_FAIL(e, QA_ERR_INTERNAL, "graph_begin_loop: a recording is already open");
    cudaGraph_t g = NULL;
    QA_CUDA_CHECK(e, cudaGraphCreate(&g, 0));
    cudaGraphConditionalHandle h = 0;
    cudaGraphNodeParams p = {}; /* unused and reserved fields zero */
    cudaGraphNode_t node;
    cudaError_t err = cudaGraphConditionalHandleCreate(&h, g, 1, cudaGraphCondAssignDefault);
    if (err == cudaSuccess) {
        p.type = cudaGraphNodeTypeConditional;
        p.conditional.handle = h;
        p.conditional.type = cudaGraphCondTypeWhile;
        p.conditional.size = 1;
        err = cudaGraphAddNode(&node, g, NULL, NULL, 0, &p);
    }
    if (err == cudaSuccess) /* phGraph_out[0]: the body, owned by the node */
        err = cudaStreamBeginCaptureToGraph(c->stream, p.conditional.phGraph_out[0], NULL, NULL, 0,
                                            cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess)
        cudaGraphDestroy(g);
    QA_CUDA_CHECK(e, err);
    c->capturing = 1;
    c->loop_graph = g;
    c->loop_handle = h;
    c->loop = *loop;
    return QA_OK;
}

static void drop_exec(qa_cuda_ctx *c, int slot)
{
    if (c->graph_exec[slot])
        cudaGraphExecDestroy(c->graph_exec[slot]);
    c->graph_exec[slot] = NULL;
    c->graph_key[slot] = NULL;
}

/* Instantiate g into slot (g is destroyed here), measuring the driver memory it takes. */
static qa_status instantiate(qa_cuda_ctx *c, int slot, cudaGraph_t g, const void *key, qa_err *e)
{
    size_t f0 = 0, f1 = 0, tot;
    drop_exec(c, slot);
    cudaError_t err = cudaMemGetInfo(&f0, &tot);
    cudaGraphExec_t ex = NULL;
    if (err == cudaSuccess)
        err = cudaGraphInstantiate(&ex, g, 0);
    cudaGraphDestroy(g); /* the executable graph keeps its own copy */
    if (err == cudaSuccess)
        err = cudaGraphUpload(ex, c->stream);
    if (err == cudaSuccess)
        err = cudaStreamSynchronize(c->stream);
    if (err == cudaSuccess)
        err = cudaMemGetInfo(&f1, &tot);
    if (err != cudaSuccess && ex)
        cudaGraphExecDestroy(ex);
    QA_CUDA_CHECK(e, err);
    c->graph_exec[slot] = ex;
    c->graph_key[slot] = key;
    c->graph_bytes += f0 > f1 ? f0 - f1 : 0;
    c->n_graph_instantiations++;
    return QA_OK;
}

qa_status qa_cuda_graph_end(qa_cuda_ctx *c, int slot, const void *key, qa_err *e)
{
    if (!c->capturing)
        return QA_FAIL(e, QA_ERR_INTERNAL, "graph_end: no recording is open");
    if (slot < 0 || slot >= QA_GRAPH_SLOTS)
        return QA_FAIL(e, QA_ERR_INTERNAL, "graph_end: slot %d outside [0, %d)", slot, QA_GRAPH_SLOTS);
    c->capturing = 0;
    cudaGraph_t loop = c->loop_graph;
    c->loop_graph = NULL;
    /* a loop's body ends with the kernel that decides whether it runs again */
    qa_status closed = loop && key ? qa_cu_step_continue(c->stream, c->loop_handle, &c->loop, e) : QA_OK;
    cudaGraph_t g = NULL;
    cudaError_t err = cudaStreamEndCapture(c->stream, &g);
    if (loop)
        g = loop; /* what was captured is its body, which it owns */
    if (!key || closed != QA_OK) { /* an op failed while recording: drop it; its error was reported already */
        if (g)
            cudaGraphDestroy(g);
        cudaGetLastError();
        return closed;
    }
    if (err != cudaSuccess && g)
        cudaGraphDestroy(g);
    QA_CUDA_CHECK(e, err);
    return instantiate(c, slot, g, key, e);
}

qa_status qa_cuda_graph_launch(qa_cuda_ctx *c, int slot, qa_err *e)
{
    if (slot < 0 || slot >= QA_GRAPH_SLOTS || !c->graph_exec[slot])
        return QA_FAIL(e, QA_ERR_INTERNAL, "graph_launch: slot %d holds no recording", slot);
    QA_CUDA_CHECK(e, cudaGraphLaunch(c->graph_exec[slot], c->stream));
    return QA_OK;
}

int qa_cuda_graph_ready(const qa_cuda_ctx *c, int slot, const void *key)
{
    return c && slot >= 0 && slot < QA_GRAPH_SLOTS && c->graph_exec[slot] && c->graph_key[slot] == key;
}

void qa_cuda_graphs_free(qa_cuda_ctx *c)
{
    if (c->capturing) { /* closed in the middle of a recording (an error path): end it first */
        cudaGraph_t g = NULL;
        cudaStreamEndCapture(c->stream, &g);
        if (c->loop_graph)
            g = c->loop_graph; /* g was its body */
        if (g)
            cudaGraphDestroy(g);
        c->loop_graph = NULL;
        c->capturing = 0;
    }
    for (int i = 0; i < QA_GRAPH_SLOTS; i++)
        drop_exec(c, i);
}

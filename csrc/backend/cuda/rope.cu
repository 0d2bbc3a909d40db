/* rope.cu — rotary position embedding, NeoX split-half layout (Qwen3 text decoder).
 *
 * Contract: ops.cuh. In place on x [T, H, Dh] with row stride ld (floats) between tokens, token t at
 * position pos0 + t. For i < Dh/2: a = x[i], b = x[i + Dh/2], out[i] = a cos - b sin,
 * out[i + Dh/2] = b cos + a sin (rotate_half: cat(-x2, x1)).
 * Reference: transformers Qwen3RotaryEmbedding / apply_rotary_pos_emb (MODEL_FACTS §5): inv_freq =
 * 1 / theta^(arange(0, Dh, 2) / Dh) in fp32, angle = fp32(pos) * inv_freq (one fp32 product, the
 * position_ids matmul), cos/sin in fp32. We use the accurate cosf/sinf (not __cosf): angles reach
 * thousands of radians for long prompts and the fast intrinsics lose digits there.
 */
#include "ops.cuh"

__global__ void rope_kernel(float *x, int T, int H, int Dh, int ld, int pos0, float theta)
{
    int half = Dh / 2;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t total = (size_t)T * H * half;
    if (idx >= total)
        return;
    int i = (int)(idx % half);
    int h = (int)((idx / half) % H);
    int t = (int)(idx / ((size_t)half * H));
    float inv = 1.0f / powf(theta, (float)(2 * i) / (float)Dh);
    float ang = (float)(pos0 + t) * inv;
    float c = cosf(ang), sn = sinf(ang);
    float *p = x + (size_t)t * ld + (size_t)h * Dh;
    float a = p[i], b = p[i + half];
    p[i] = a * c - b * sn;
    p[i + half] = b * c + a * sn;
}

qa_status qa_cu_rope(cudaStream_t s, float *x, int T, int H, int Dh, int ld, int pos0, float theta, qa_err *e)
{
    if (Dh % 2 != 0)
        return QA_FAIL(e, QA_ERR_INTERNAL, "rope: head dim %d is odd", Dh);
    size_t total = (size_t)T * H * (Dh / 2);
    if (total == 0)
        return QA_OK;
    rope_kernel<<<qa_cuda_blocks(total, 256), 256, 0, s>>>(x, T, H, Dh, ld, pos0, theta);
    QA_LAUNCH_CHECK(e);
    return QA_OK;
}

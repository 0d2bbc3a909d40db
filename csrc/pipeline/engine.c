/* engine.c — per-request glue between a loaded qa_models and the pipelines: limits, workspace, scratch.
 *
 * Contract (engine.h). The plan (memory/plan.c) fixed, at load, the largest request each model
 * serves: mel frames for max_audio_seconds, prompt tokens, new tokens (ASR) and the KV positions.
 * A request beyond them is refused here with the limit's name, before any compute. Every request
 * starts from an empty workspace region whose first bytes become the backend scratch (the size the
 * plan computed with the backend's scratch formula); the rest is the pipelines' stack of buffers.
 * A request runs on one worker (models.h): that worker's workspace, KV cache and backend table, so
 * requests on different workers share nothing writable and may run at once (the caller hands each
 * worker to one request at a time). ms->active / max_active count requests inside the engine.
 */
#include "engine.h"

#include "../core/alloc.h"
#include "align.h"
#include "asr.h"

static qa_status need_worker(qa_models *ms, int w, qa_worker **wk, qa_err *e)
{
    *wk = qa_models_worker(ms, w);
    if (!*wk)
        return QA_FAIL(e, QA_ERR_INTERNAL, "worker %d does not exist (the models have %d)", w, ms->n_workers);
    return QA_OK;
}

static qa_status need_model(qa_models *ms, qa_model_kind k, const qa_model **m, qa_err *e)
{
    *m = qa_models_model(ms, k);
    if (!*m)
        return QA_FAIL(e, QA_ERR_INPUT, "no %s model is loaded", qa_model_kind_name(k));
    if (!ms->be.gemm)
        return QA_FAIL(e, QA_ERR_INPUT, "no compute backend for device %s", ms->dev.name);
    return QA_OK;
}

/* Worker wk's empty workspace + backend scratch at its start; the request's cancellation hook on
 * the worker's backend. */
static qa_status begin(qa_models *ms, qa_worker *wk, const qa_inputs *in, qa_err *e)
{
    qa_backend *be = wk->be;
    qa_region_reset(wk->ws);
    size_t need = be->scratch_need(be, &ms->plan.scratch_dims);
    if (need > ms->plan.scratch_bytes) /* the plan sized it with the CPU formula */
        return QA_FAIL(e, QA_ERR_INTERNAL, "the %s backend needs %zu bytes of scratch, the plan has %zu",
                       be->name, need, ms->plan.scratch_bytes);
    be->scratch_bytes = ms->plan.scratch_bytes;
    be->scratch = qa_arena_take(wk->ws, ms->plan.scratch_bytes, e);
    if (!be->scratch)
        return e->code;
    be->cancel = in->cancel; /* cleared again by finish() */
    return QA_OK;
}

/* End of a request: the hook's context belongs to the caller's call, so it must not outlive it. */
static qa_status finish(qa_worker *wk, qa_status s)
{
    wk->be->cancel = (qa_cancel){0};
    return s;
}

/* The request with the engine's parts for a request from samples: the upload hook and the tables. */
static qa_inputs with_engine(qa_models *ms, const qa_inputs *in)
{
    qa_inputs r = *in;
    r.dev = &ms->dev;
    qa_region *t = qa_models_mel_tables(ms);
    r.mel_tables = t ? t->base : NULL;
    return r;
}

static qa_status audio_run(qa_models *ms, int w, qa_model_kind kind, const qa_inputs *in, float *out_host, qa_err *e)
{
    const qa_model *m;
    qa_worker *wk;
    QA_TRY(need_worker(ms, w, &wk, e));
    QA_TRY(need_model(ms, kind, &m, e));
    qa_inputs audio = with_engine(ms, in);
    audio.ids = NULL;
    audio.T = 0;
    QA_TRY(qa_inputs_check(m, &audio, ms->plan.model[kind].mel_frames, 0, e));
    QA_TRY(begin(ms, wk, &audio, e));
    return finish(wk, qa_inputs_audio(wk->be, m, wk->ws, &audio, out_host, e));
}

void qa_engine_align_pack_limit(qa_models *ms, qa_pack_size *lim)
{
    const qa_plan_model *pm = &ms->plan.model[QA_MODEL_ALIGNER];
    const qa_model *m = qa_models_model(ms, QA_MODEL_ALIGNER);
    int64_t L = m ? 2 * (int64_t)m->cfg.audio.n_window : 1;
    *lim = (qa_pack_size){QA_PACK_MAX, pm->mel_frames, (pm->mel_frames + L - 1) / L, pm->audio_tokens,
                          pm->seq_tokens, pm->text_tokens};
}

/* One request of a pack: qa_align_count against the plan, its timestamps within max_text_tokens. */
static qa_status count_one(qa_models *ms, const qa_model *m, const qa_inputs *in, int64_t *n, qa_err *e)
{
    const qa_plan_model *pm = &ms->plan.model[QA_MODEL_ALIGNER];
    QA_TRY(qa_align_count(m, in, pm->mel_frames, pm->seq_tokens, n, e));
    if (*n > pm->text_tokens)
        return qa_inputs_finite_first(in, QA_FAIL(e, QA_ERR_INPUT, "%lld <timestamp> ids exceed the plan's "
                                                  "max_text_tokens %d", (long long)*n, pm->text_tokens), e);
    return QA_OK;
}

/* The aligner's requests from samples leave their finiteness check to the forward's upload (inputs.h
 * scan_at_upload): the validation then reads no sample, the upload reads each once. */
static qa_inputs deferred(const qa_inputs *in)
{
    qa_inputs r = *in;
    r.scan_at_upload = 1;
    return r;
}

/* 1 when one of clips [0, k), which passed their checks, has a non-finite sample; *e = its error, named
 * with its clip. A pack check that failed after them reports this instead: before the deferral, their
 * finiteness was checked first. */
static int earlier_clip_not_finite(const qa_inputs *in, int64_t k, int64_t B, qa_err *e)
{
    for (int64_t j = 0; j < k; j++) {
        qa_err f = {0};
        if (in[j].samples && !in[j].feat && qa_inputs_check_finite(&in[j], &f) != QA_OK) {
            *e = f;
            if (B > 1)
                qa_err_prefix(e, "clip %lld of the pack: ", (long long)j);
            return 1;
        }
    }
    return 0;
}

qa_status qa_engine_align_pack_count(qa_models *ms, const qa_inputs *in, int64_t B, int64_t *n, qa_err *e)
{
    const qa_model *m;
    qa_pack_size size = {0}, lim;
    QA_TRY(need_model(ms, QA_MODEL_ALIGNER, &m, e));
    if (B < 1 || B > QA_PACK_MAX)
        return QA_FAIL(e, QA_ERR_INPUT, "a pack holds 1 to %d clips, got %lld", QA_PACK_MAX, (long long)B);
    for (int64_t i = 0; i < B; i++) {
        qa_inputs c = deferred(&in[i]);
        qa_status s = count_one(ms, m, &c, &n[i], e);
        if (s != QA_OK) {
            if (earlier_clip_not_finite(in, i, B, e))
                return e->code;
            if (B > 1)
                qa_err_prefix(e, "clip %lld of the pack: ", (long long)i);
            return s;
        }
        qa_align_pack_add(m, &in[i], n[i], &size);
    }
    qa_engine_align_pack_limit(ms, &lim);
    qa_status s = qa_align_pack_fits(&size, &lim, e);
    return s != QA_OK && earlier_clip_not_finite(in, B, B, e) ? e->code : s;
}

/* counted: the caller's qa_engine_align_pack_count of these same inputs (the validation is not repeated),
 * or NULL to validate here. */
static qa_status align_run(qa_models *ms, int w, const qa_inputs *in, int64_t B, const int64_t *counted, float *logits,
                           int32_t *classes, float *probs, qa_err *e)
{
    const qa_model *m;
    qa_worker *wk;
    int64_t n[QA_PACK_MAX];
    qa_inputs req[QA_PACK_MAX]; /* the requests with the engine's parts (~27 KB of stack at most) */
    QA_TRY(need_worker(ms, w, &wk, e));
    if (!counted)
        QA_TRY(qa_engine_align_pack_count(ms, in, B, n, e));
    QA_TRY(need_model(ms, QA_MODEL_ALIGNER, &m, e));
    QA_TRY(begin(ms, wk, in, e));
    for (int64_t i = 0; i < B; i++) {
        req[i] = with_engine(ms, &in[i]);
        req[i].scan_at_upload = 1; /* pack_count deferred it */
    }
    return finish(wk, qa_align_forward(wk->be, m, wk->ws, req, B, logits, classes, probs, e));
}

/* Worker w's KV cache (every worker's has the same size: the check below may use worker 0's), of the
 * compute dtype as the plan sized it (qa_plan_kv_bytes). */
static qa_kv_cache kv_view(qa_models *ms, int w, const qa_model *m)
{
    qa_region *r = ms->worker[w].kv;
    const qa_plan_model *pm = &ms->plan.model[QA_MODEL_ASR];
    qa_kv_cache kv = {r ? r->base : NULL, ms->plan.limits.dtype,
                      (int64_t)pm->seq_tokens + ms->plan.limits.max_new_tokens,
                      (int64_t)m->cfg.text.kv_heads * m->cfg.text.head_dim};
    return kv;
}

qa_status qa_engine_asr_check(qa_models *ms, const qa_inputs *in, int64_t max_new, int64_t min_new, qa_err *e)
{
    const qa_model *m;
    QA_TRY(need_model(ms, QA_MODEL_ASR, &m, e));
    if (max_new > ms->plan.limits.max_new_tokens)
        return QA_FAIL(e, QA_ERR_INPUT, "max_new_tokens %lld exceeds the plan's max_new_tokens %d (load_models)",
                       (long long)max_new, ms->plan.limits.max_new_tokens);
    qa_kv_cache kv = kv_view(ms, 0, m);
    if (!kv.base)
        return QA_FAIL(e, QA_ERR_INTERNAL, "the arena has no kv/asr region");
    const qa_plan_model *pm = &ms->plan.model[QA_MODEL_ASR];
    return qa_asr_check(m, in, pm->mel_frames, pm->seq_tokens, max_new, min_new, &kv, e);
}

static qa_status asr_run(qa_models *ms, int w, const qa_inputs *in, int64_t max_new, int64_t min_new, int32_t *ids,
                         int64_t *n, float *first_logits, qa_err *e)
{
    const qa_model *m;
    qa_worker *wk;
    QA_TRY(need_worker(ms, w, &wk, e));
    QA_TRY(qa_engine_asr_check(ms, in, max_new, min_new, e));
    QA_TRY(need_model(ms, QA_MODEL_ASR, &m, e));
    qa_kv_cache kv = kv_view(ms, w, m);
    QA_TRY(begin(ms, wk, in, e));
    qa_inputs req = with_engine(ms, in);
    return finish(wk, qa_asr_generate(wk->be, m, wk->ws, &kv, &req, max_new, min_new,
                                      ms->plan.limits.max_new_tokens, ids, n, first_logits, e));
}

/* Features of samples on worker w's backend into out_host [mel_bins, frames]; the limit is the larger
 * max_audio_seconds of the loaded models (whose workspace plan holds features + samples + work). */
static qa_status mel_run(qa_models *ms, int w, const qa_inputs *in, float *out_host, qa_err *e)
{
    const qa_model *m = NULL;
    qa_worker *wk;
    int64_t max_frames = 0;
    QA_TRY(need_worker(ms, w, &wk, e));
    for (int k = 0; k < 2; k++)
        if (ms->present[k] && ms->plan.model[k].mel_frames > max_frames) {
            max_frames = ms->plan.model[k].mel_frames;
            m = &ms->model[k];
        }
    if (!m || !wk->be->log_mel)
        return QA_FAIL(e, QA_ERR_INPUT, "no model or no compute backend for device %s", ms->dev.name);
    if (!in->samples || in->feat)
        return QA_FAIL(e, QA_ERR_INTERNAL, "mel_features: a request from samples expected");
    qa_inputs req = with_engine(ms, in);
    req.ids = NULL;
    req.T = 0;
    QA_TRY(qa_inputs_check(m, &req, max_frames, 0, e)); /* the limit, finite samples */
    size_t bytes = (size_t)(req.mel_bins * req.frames) * sizeof(float);
    QA_TRY(begin(ms, wk, &req, e));
    float *feat = qa_arena_take(wk->ws, bytes, e);
    if (!feat)
        return finish(wk, e->code);
    qa_status s = qa_inputs_features(wk->be, wk->ws, &req, feat, e);
    if (s == QA_OK)
        s = wk->be->copy(wk->be, out_host, feat, bytes, QA_COPY_D2H, e);
    return finish(wk, s);
}

/* The public entry points run the request inside an allocation scope (core/alloc.h): anything the
 * compute allocates on the host shows up in memory_report()'s allocations_after_load. They also
 * count the requests inside the engine, so a test can see that two workers overlapped. */
static void enter(qa_models *ms)
{
    qa_alloc_scope_enter();
    int now = atomic_fetch_add(&ms->active, 1) + 1;
    int seen = atomic_load(&ms->max_active);
    while (now > seen && !atomic_compare_exchange_weak(&ms->max_active, &seen, now))
        ; /* another request raised it meanwhile: seen holds its value, compare again */
}

static qa_status leave(qa_models *ms, qa_status s)
{
    atomic_fetch_sub(&ms->active, 1);
    qa_alloc_scope_leave();
    return s;
}

qa_status qa_engine_audio(qa_models *ms, int w, qa_model_kind kind, const qa_inputs *in, float *out_host, qa_err *e)
{
    enter(ms);
    return leave(ms, audio_run(ms, w, kind, in, out_host, e));
}

qa_status qa_engine_align(qa_models *ms, int w, const qa_inputs *in, float *logits, int32_t *classes, float *probs,
                          qa_err *e)
{
    enter(ms);
    return leave(ms, align_run(ms, w, in, 1, NULL, logits, classes, probs, e));
}

qa_status qa_engine_align_pack(qa_models *ms, int w, const qa_inputs *in, int64_t B, const int64_t *counted,
                               float *logits, int32_t *classes, float *probs, qa_err *e)
{
    enter(ms);
    return leave(ms, align_run(ms, w, in, B, counted, logits, classes, probs, e));
}

qa_status qa_engine_asr(qa_models *ms, int w, const qa_inputs *in, int64_t max_new, int64_t min_new, int32_t *ids,
                        int64_t *n, float *first_logits, qa_err *e)
{
    enter(ms);
    return leave(ms, asr_run(ms, w, in, max_new, min_new, ids, n, first_logits, e));
}

qa_status qa_engine_mel(qa_models *ms, int w, const qa_inputs *in, float *out_host, qa_err *e)
{
    enter(ms);
    return leave(ms, mel_run(ms, w, in, out_host, e));
}

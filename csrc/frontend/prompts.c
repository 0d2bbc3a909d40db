/* prompts.c — aligner and ASR prompt ids, audio token count, timestamp positions (see prompts.h).
 *
 * References: aligner — Qwen3ForceAlignProcessor.encode_timestamp (original) and the -hf chat
 * template, both "<|audio_start|><|audio_pad|><|audio_end|>" + words joined and ended by
 * "<timestamp><timestamp>", the pad expanded to n_audio copies (MODEL_FACTS §7.2). ASR — the chat
 * template of Qwen3-ASR with a (possibly empty) system block and, when a language is forced, the
 * assistant turn pre-filled with "language {Name}<asr_text>" (§8.1).
 * The reference tokenizes the whole prompt string; because every part boundary here is an added
 * token (matched whole before BPE), encoding the parts one by one gives the same ids.
 * Contract: ids are appended to a caller-owned qa_ids; on failure *out keeps its old length.
 */
#include "prompts.h"

#include <string.h>

#include "../core/alloc.h"

typedef struct prompt_ids {
    int32_t audio_start, audio_pad, audio_end, timestamp, asr_text;
} prompt_ids;

static qa_status lookup_ids(const qa_tokenizer *t, prompt_ids *p, qa_err *e)
{
    QA_TRY(qa_tokenizer_require(t, "<|audio_start|>", &p->audio_start, e));
    QA_TRY(qa_tokenizer_require(t, "<|audio_pad|>", &p->audio_pad, e));
    QA_TRY(qa_tokenizer_require(t, "<|audio_end|>", &p->audio_end, e));
    QA_TRY(qa_tokenizer_require(t, "<timestamp>", &p->timestamp, e));
    return qa_tokenizer_require(t, "<asr_text>", &p->asr_text, e);
}

size_t qa_audio_token_count(size_t valid_frames)
{
    size_t rest = valid_frames % 100;
    return 13 * (valid_frames / 100) + (rest + 7) / 8;
}

size_t qa_timestamp_positions(const int32_t *ids, size_t n, int32_t timestamp_id, int32_t *pos)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == timestamp_id) {
            if (pos)
                pos[k] = (int32_t)i;
            k++;
        }
    return k;
}

/* Index of the first structural id (audio tokens, and <timestamp> when with_ts) in ids[from..n), or n. */
static size_t find_structural(const prompt_ids *p, const qa_ids *ids, size_t from, int with_ts)
{
    for (size_t i = from; i < ids->n; i++) {
        int32_t v = ids->v[i];
        if (v == p->audio_start || v == p->audio_pad || v == p->audio_end || (with_ts && v == p->timestamp))
            return i;
    }
    return ids->n;
}

static qa_status push_audio(const prompt_ids *p, size_t n_audio, qa_ids *out, qa_err *e)
{
    QA_TRY(qa_ids_push(out, p->audio_start, e));
    for (size_t i = 0; i < n_audio; i++)
        QA_TRY(qa_ids_push(out, p->audio_pad, e));
    return qa_ids_push(out, p->audio_end, e);
}

static qa_status aligner_words(const qa_tokenizer *t, const prompt_ids *p, const char *const *words,
                               const size_t *lens, size_t n_words, qa_ids *out, qa_err *e)
{
    for (size_t i = 0; i < n_words; i++) {
        if (lens[i] == 0)
            return QA_FAIL(e, QA_ERR_INPUT, "aligner prompt: word %zu is empty", i);
        size_t from = out->n;
        QA_TRY(qa_tokenizer_encode(t, words[i], lens[i], out, e));
        if (find_structural(p, out, from, 1) < out->n)
            return QA_FAIL(e, QA_ERR_INPUT, "aligner prompt: word %zu ('%.*s') contains an audio or <timestamp> "
                           "token", i, (int)(lens[i] > 60 ? 60 : lens[i]), words[i]);
        QA_TRY(qa_ids_push(out, p->timestamp, e));
        QA_TRY(qa_ids_push(out, p->timestamp, e));
    }
    return QA_OK;
}

qa_status qa_aligner_prompt_ids(const qa_tokenizer *t, const char *const *words, const size_t *lens, size_t n_words,
                                size_t n_audio, qa_ids *out, qa_err *e)
{
    prompt_ids p;
    QA_TRY(lookup_ids(t, &p, e));
    if (n_words == 0)
        return QA_FAIL(e, QA_ERR_INPUT, "no words to align");
    size_t n0 = out->n;
    qa_status s = push_audio(&p, n_audio, out, e);
    if (s == QA_OK)
        s = aligner_words(t, &p, words, lens, n_words, out, e);
    if (s != QA_OK)
        out->n = n0;
    return s;
}

/* Encode a + b + c as one text (b is caller text, a and c are template pieces). */
static qa_status encode3(const qa_tokenizer *t, const char *a, const char *b, size_t nb, const char *c, qa_ids *out,
                         qa_err *e)
{
    size_t na = strlen(a), nc = strlen(c);
    char *buf = qa_malloc(na + nb + nc + 1, e);
    if (!buf)
        return QA_ERR_OOM;
    memcpy(buf, a, na);
    if (nb)
        memcpy(buf + na, b, nb);
    memcpy(buf + na + nb, c, nc);
    qa_status s = qa_tokenizer_encode(t, buf, na + nb + nc, out, e);
    qa_free(buf);
    return s;
}

static qa_status asr_parts(const qa_tokenizer *t, const prompt_ids *p, size_t n_audio, const char *language,
                           const char *context, size_t context_len, qa_ids *out, qa_err *e)
{
    size_t from = out->n;
    QA_TRY(encode3(t, "<|im_start|>system\n", context, context_len, "<|im_end|>\n<|im_start|>user\n", out, e));
    if (find_structural(p, out, from, 0) < out->n)
        return QA_FAIL(e, QA_ERR_INPUT, "ASR prompt: the context contains an audio token");
    QA_TRY(push_audio(p, n_audio, out, e));
    if (!language)
        return encode3(t, "<|im_end|>\n<|im_start|>assistant\n", "", 0, "", out, e);
    /* forced language: the assistant turn starts with "language {Name}<asr_text>" */
    from = out->n;
    QA_TRY(encode3(t, "<|im_end|>\n<|im_start|>assistant\nlanguage ", language, strlen(language), "<asr_text>", out,
                   e));
    if (find_structural(p, out, from, 1) < out->n ||
        qa_timestamp_positions(out->v + from, out->n - from, p->asr_text, NULL) != 1)
        return QA_FAIL(e, QA_ERR_INPUT, "ASR prompt: language '%.40s' contains a special token", language);
    return QA_OK;
}

qa_status qa_asr_prompt_ids(const qa_tokenizer *t, size_t n_audio, const char *language, const char *context,
                            size_t context_len, qa_ids *out, qa_err *e)
{
    prompt_ids p;
    QA_TRY(lookup_ids(t, &p, e));
    if (language && !*language)
        return QA_FAIL(e, QA_ERR_INPUT, "ASR prompt: the forced language is empty");
    size_t n0 = out->n;
    qa_status s = asr_parts(t, &p, n_audio, language, context ? context : "", context ? context_len : 0, out, e);
    if (s != QA_OK)
        out->n = n0;
    return s;
}

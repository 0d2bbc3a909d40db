/* py_text.c — Python entry points of the text area (see py.h): the Tokenizer type, word splitting,
 * prompt ids, audio token count, timestamp repair.
 *
 * Tokenizer(folder) owns one qa_tokenizer (csrc/frontend/tokenizer.h); its methods release the GIL
 * while encoding/decoding (the tokenizer is immutable after load, so threads may share it).
 * Text arguments are str (UTF-8 from the str, lone surrogates -> InputError naming the index) or,
 * for Tokenizer.encode, bytes (validated as UTF-8 in C). Language names are resolved by
 * qwen3align/frontend.py before they reach _split_words / _asr_prompt_ids.
 */
#include "py.h"

#include "../core/alloc.h"
#include "../frontend/prompts.h"
#include "../frontend/timestamps.h"
#include "../frontend/tokenizer.h"
#include "../frontend/words.h"

typedef struct {
    PyObject_HEAD
    qa_tokenizer *tok; /* owned; freed in dealloc */
} TokenizerObject;

/* ---- helpers ---------------------------------------------------------------------------------- */

/* UTF-8 view of a str (borrowed from it) or a bytes object; InputError for lone surrogates. */
static int text_arg(qa_py_state *st, PyObject *obj, const char *what, int allow_bytes, const char **s, Py_ssize_t *n)
{
    if (allow_bytes && PyBytes_Check(obj)) {
        *s = PyBytes_AS_STRING(obj);
        *n = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (!PyUnicode_Check(obj)) {
        qa_py_input_error(st, "%s must be str%s, not %s", what, allow_bytes ? " or bytes" : "", Py_TYPE(obj)->tp_name);
        return -1;
    }
    *s = PyUnicode_AsUTF8AndSize(obj, n);
    if (*s)
        return 0;
    if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        Py_ssize_t i = 0;
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        if (exc)
            PyUnicodeEncodeError_GetStart(exc, &i);
        Py_XDECREF(type);
        Py_XDECREF(exc);
        Py_XDECREF(tb);
        Py_UCS4 c = i < PyUnicode_GET_LENGTH(obj) ? PyUnicode_READ_CHAR(obj, i) : 0;
        qa_py_input_error(st, "%s contains a lone surrogate U+%04X at index %zd (not valid Unicode text)", what,
                          (unsigned)c, i);
    }
    return -1;
}

static PyObject *ids_to_list(const int32_t *v, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *x = PyLong_FromLong(v[i]);
        if (!x) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

/* The qa_tokenizer of a qwen3align.Tokenizer argument (borrowed), or NULL with InputError. */
static qa_tokenizer *tokenizer_of(qa_py_state *st, PyObject *obj)
{
    PyTypeObject *tp = NULL;
    for (int i = 0; i < st->n_types; i++)
        if (strcmp(((PyTypeObject *)st->types[i])->tp_name, "qwen3align.Tokenizer") == 0)
            tp = (PyTypeObject *)st->types[i];
    if (!tp || !PyObject_TypeCheck(obj, tp)) {
        qa_py_input_error(st, "tokenizer must be a qwen3align.Tokenizer, not %s", Py_TYPE(obj)->tp_name);
        return NULL;
    }
    return ((TokenizerObject *)obj)->tok;
}

/* ---- Tokenizer ------------------------------------------------------------------------------ */

static PyObject *Tokenizer_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"folder", NULL};
    PyObject *path = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&:Tokenizer", kwlist, PyUnicode_FSConverter, &path))
        return NULL;
    qa_py_state *st = qa_py_state_of_type(tp);
    TokenizerObject *self = st ? (TokenizerObject *)tp->tp_alloc(tp, 0) : NULL;
    if (!self) {
        Py_DECREF(path);
        return NULL;
    }
    qa_err err = {0};
    qa_status s;
    const char *folder = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    s = qa_tokenizer_load(folder, &self->tok, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s != QA_OK) {
        Py_DECREF(self);
        return qa_py_raise(st, &err);
    }
    return (PyObject *)self;
}

static void Tokenizer_dealloc(TokenizerObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    qa_tokenizer_free(self->tok);
    self->tok = NULL;
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *Tokenizer_encode(TokenizerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"text", NULL};
    PyObject *text;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:encode", kwlist, &text))
        return NULL;
    qa_py_state *st = qa_py_state_of_type(Py_TYPE(self));
    const char *s;
    Py_ssize_t n;
    if (!st || text_arg(st, text, "text", 1, &s, &n) < 0)
        return NULL;
    qa_ids ids = {0};
    qa_err err = {0};
    qa_status rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qa_tokenizer_encode(self->tok, s, (size_t)n, &ids, &err);
    Py_END_ALLOW_THREADS
    PyObject *res = rc == QA_OK ? ids_to_list(ids.v, ids.n) : qa_py_raise(st, &err);
    qa_ids_free(&ids);
    return res;
}

/* ids -> int32 array: InputError unless a 1-D sequence of integers >= 0; ids >= 2^31 become
 * INT32_MAX (no token, skipped like any unknown id). Caller frees *out with qa_free. */
static int ids_arg(qa_py_state *st, PyObject *obj, int32_t **out, size_t *n)
{
    PyArrayObject *arr = (PyArrayObject *)PyArray_FromAny(obj, PyArray_DescrFromType(NPY_INT64), 1, 1,
                                                          NPY_ARRAY_IN_ARRAY, NULL);
    if (!arr) {
        PyErr_Clear();
        qa_py_input_error(st, "ids must be a 1-D sequence of integers");
        return -1;
    }
    qa_err err = {0};
    *n = (size_t)PyArray_DIM(arr, 0);
    *out = qa_malloc_n(*n ? *n : 1, sizeof **out, &err);
    if (!*out) {
        Py_DECREF(arr);
        qa_py_raise(st, &err);
        return -1;
    }
    const int64_t *v = (const int64_t *)PyArray_DATA(arr);
    for (size_t i = 0; i < *n; i++) {
        if (v[i] < 0) {
            qa_py_input_error(st, "ids[%zu] = %lld is negative", i, (long long)v[i]);
            qa_free(*out);
            Py_DECREF(arr);
            return -1;
        }
        (*out)[i] = v[i] > INT32_MAX ? INT32_MAX : (int32_t)v[i];
    }
    Py_DECREF(arr);
    return 0;
}

static PyObject *Tokenizer_decode(TokenizerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ids", "skip_special_tokens", NULL};
    PyObject *obj;
    int skip = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|p:decode", kwlist, &obj, &skip))
        return NULL;
    qa_py_state *st = qa_py_state_of_type(Py_TYPE(self));
    int32_t *ids;
    size_t n;
    if (!st || ids_arg(st, obj, &ids, &n) < 0)
        return NULL;
    char *text = NULL;
    size_t len = 0;
    qa_err err = {0};
    qa_status rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qa_tokenizer_decode(self->tok, ids, n, skip, &text, &len, &err);
    Py_END_ALLOW_THREADS
    qa_free(ids);
    PyObject *res = rc == QA_OK ? PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "strict") : qa_py_raise(st, &err);
    qa_free(text);
    return res;
}

static PyObject *Tokenizer_token_to_id(TokenizerObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"token", NULL};
    const char *s;
    Py_ssize_t n;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s#:token_to_id", kwlist, &s, &n))
        return NULL;
    int32_t id = qa_tokenizer_token_id(self->tok, s, (size_t)n);
    if (id < 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(id);
}

static PyObject *Tokenizer_n_ids(TokenizerObject *self, void *closure)
{
    return PyLong_FromLong(qa_tokenizer_n_ids(self->tok));
}

static PyObject *Tokenizer_reduce(PyObject *self, PyObject *unused)
{
    PyErr_SetString(PyExc_TypeError, "cannot pickle a qwen3align.Tokenizer; build one per process from its folder");
    return NULL;
}

static PyMethodDef tokenizer_methods[] = {
    {"encode", (PyCFunction)(void (*)(void))Tokenizer_encode, METH_VARARGS | METH_KEYWORDS,
     "encode(text) -> list[int]\n\nIds of text (str or UTF-8 bytes) without special tokens added; added "
     "tokens written in the text (\"<|im_start|>\", \"<timestamp>\") are matched whole."},
    {"decode", (PyCFunction)(void (*)(void))Tokenizer_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(ids, skip_special_tokens=False) -> str\n\nText of ids; invalid UTF-8 becomes U+FFFD. With "
     "skip_special_tokens, special added tokens are dropped (<asr_text> and <timestamp> are kept)."},
    {"token_to_id", (PyCFunction)(void (*)(void))Tokenizer_token_to_id, METH_VARARGS | METH_KEYWORDS,
     "token_to_id(token) -> int | None\n\nId of a token by its exact content (vocab.json form or added token)."},
    {"__reduce__", Tokenizer_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef tokenizer_getset[] = {
    {"n_ids", (getter)Tokenizer_n_ids, NULL, "1 + the largest token id (vocabulary and added tokens).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot tokenizer_slots[] = {
    {Py_tp_new, Tokenizer_new},
    {Py_tp_dealloc, Tokenizer_dealloc},
    {Py_tp_methods, tokenizer_methods},
    {Py_tp_getset, tokenizer_getset},
    {Py_tp_doc, "Tokenizer(folder)\n\nQwen2 byte-level BPE loaded from a checkpoint folder (vocab.json, "
                "merges.txt, tokenizer_config.json). Malformed files raise ModelLoadError."},
    {0, NULL},
};

static PyType_Spec tokenizer_spec = {
    .name = "qwen3align.Tokenizer",
    .basicsize = sizeof(TokenizerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = tokenizer_slots,
};

/* ---- module functions ------------------------------------------------------------------------ */

static PyObject *words_to_list(const qa_words *w)
{
    PyObject *list = PyList_New((Py_ssize_t)w->n);
    for (size_t i = 0; list && i < w->n; i++) {
        size_t n;
        const char *s = qa_words_at(w, i, &n);
        PyObject *x = PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
        if (!x) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

static PyObject *py_split_words(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"text", "mode", NULL};
    PyObject *text;
    int mode = QA_WORDS_DEFAULT;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i:_split_words", kwlist, &text, &mode))
        return NULL;
    qa_py_state *st = qa_py_state_of_module(module);
    const char *s;
    Py_ssize_t n;
    if (text_arg(st, text, "text", 0, &s, &n) < 0)
        return NULL;
    qa_words w = {0};
    qa_err err = {0};
    qa_status rc = qa_split_words(s, (size_t)n, (qa_words_mode)mode, &w, &err);
    PyObject *res = rc == QA_OK ? words_to_list(&w) : qa_py_raise(st, &err);
    qa_words_free(&w);
    return res;
}

static PyObject *py_audio_token_count(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"valid_frames", NULL};
    long long frames;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "L:audio_token_count", kwlist, &frames))
        return NULL;
    if (frames < 0)
        return qa_py_input_error(qa_py_state_of_module(module), "valid_frames must not be negative (got %lld)",
                                 frames);
    return PyLong_FromSize_t(qa_audio_token_count((size_t)frames));
}

static int n_audio_arg(qa_py_state *st, long long n, size_t *out)
{
    if (n < 0 || n > (1 << 24)) {
        qa_py_input_error(st, "n_audio_tokens must be in [0, %d] (got %lld)", 1 << 24, n);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

/* words: a sequence of str -> borrowed UTF-8 pointers (valid while seq lives). */
static int words_arg(qa_py_state *st, PyObject *seq, const char ***ptrs, size_t **lens, size_t *n)
{
    qa_err err = {0};
    *n = (size_t)PySequence_Fast_GET_SIZE(seq);
    *ptrs = qa_malloc_n(*n ? *n : 1, sizeof **ptrs, &err);
    *lens = *ptrs ? qa_malloc_n(*n ? *n : 1, sizeof **lens, &err) : NULL;
    if (!*lens) {
        qa_free(*ptrs);
        qa_py_raise(st, &err);
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        Py_ssize_t len;
        char what[32];
        snprintf(what, sizeof what, "words[%zu]", i);
        if (text_arg(st, PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)i), what, 0, &(*ptrs)[i], &len) < 0) {
            qa_free(*ptrs);
            qa_free(*lens);
            return -1;
        }
        (*lens)[i] = (size_t)len;
    }
    return 0;
}

static PyObject *py_aligner_prompt_ids(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"tokenizer", "words", "n_audio_tokens", NULL};
    PyObject *tokobj, *words;
    long long n_audio_ll;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOL:aligner_prompt_ids", kwlist, &tokobj, &words, &n_audio_ll))
        return NULL;
    qa_py_state *st = qa_py_state_of_module(module);
    qa_tokenizer *tok = tokenizer_of(st, tokobj);
    size_t n_audio;
    if (!tok || n_audio_arg(st, n_audio_ll, &n_audio) < 0)
        return NULL;
    if (PyUnicode_Check(words))
        return qa_py_input_error(st, "words must be a list of str, not one str (use split_words(text))");
    PyObject *seq = PySequence_Fast(words, "words must be a sequence of str");
    if (!seq)
        return NULL;
    const char **ptrs;
    size_t *lens, n;
    PyObject *res = NULL;
    if (words_arg(st, seq, &ptrs, &lens, &n) == 0) {
        qa_ids ids = {0};
        qa_err err = {0};
        qa_status rc;
        Py_BEGIN_ALLOW_THREADS
        rc = qa_aligner_prompt_ids(tok, ptrs, lens, n, n_audio, &ids, &err);
        Py_END_ALLOW_THREADS
        res = rc == QA_OK ? ids_to_list(ids.v, ids.n) : qa_py_raise(st, &err);
        qa_ids_free(&ids);
        qa_free(ptrs);
        qa_free(lens);
    }
    Py_DECREF(seq);
    return res;
}

static PyObject *py_asr_prompt_ids(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"tokenizer", "n_audio_tokens", "language", "context", NULL};
    PyObject *tokobj, *lang_obj = Py_None, *ctx_obj = NULL;
    long long n_audio_ll;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OL|OO:_asr_prompt_ids", kwlist, &tokobj, &n_audio_ll, &lang_obj,
                                     &ctx_obj))
        return NULL;
    qa_py_state *st = qa_py_state_of_module(module);
    qa_tokenizer *tok = tokenizer_of(st, tokobj);
    size_t n_audio;
    if (!tok || n_audio_arg(st, n_audio_ll, &n_audio) < 0)
        return NULL;
    const char *lang = NULL, *ctx = "";
    Py_ssize_t lang_n = 0, ctx_n = 0;
    if (lang_obj != Py_None && text_arg(st, lang_obj, "language", 0, &lang, &lang_n) < 0)
        return NULL;
    if (ctx_obj && ctx_obj != Py_None && text_arg(st, ctx_obj, "context", 0, &ctx, &ctx_n) < 0)
        return NULL;
    if (lang && (Py_ssize_t)strlen(lang) != lang_n)
        return qa_py_input_error(st, "language contains a NUL character");
    qa_ids ids = {0};
    qa_err err = {0};
    qa_status rc;
    Py_BEGIN_ALLOW_THREADS
    rc = qa_asr_prompt_ids(tok, n_audio, lang, ctx, (size_t)ctx_n, &ids, &err);
    Py_END_ALLOW_THREADS
    PyObject *res = rc == QA_OK ? ids_to_list(ids.v, ids.n) : qa_py_raise(st, &err);
    qa_ids_free(&ids);
    return res;
}

static PyObject *py_repair_timestamps(PyObject *module, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"ms", NULL};
    PyObject *obj;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O:repair_timestamps", kwlist, &obj))
        return NULL;
    qa_py_state *st = qa_py_state_of_module(module);
    PyArrayObject *arr = (PyArrayObject *)PyArray_FromAny(obj, PyArray_DescrFromType(NPY_FLOAT64), 1, 1,
                                                          NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST, NULL);
    if (!arr) {
        PyErr_Clear();
        return qa_py_input_error(st, "ms must be a 1-D sequence of numbers (raw timestamps in milliseconds)");
    }
    size_t n = (size_t)PyArray_DIM(arr, 0);
    qa_err err = {0};
    int64_t *out = qa_malloc_n(n ? n : 1, sizeof *out, &err);
    qa_status rc = out ? qa_repair_timestamps((const double *)PyArray_DATA(arr), n, out, &err) : QA_ERR_OOM;
    PyObject *res = NULL;
    if (rc == QA_OK) {
        res = PyList_New((Py_ssize_t)n);
        for (size_t i = 0; res && i < n; i++) {
            PyObject *x = PyLong_FromLongLong(out[i]);
            if (!x) {
                Py_CLEAR(res);
                break;
            }
            PyList_SET_ITEM(res, (Py_ssize_t)i, x);
        }
    } else {
        qa_py_raise(st, &err);
    }
    qa_free(out);
    Py_DECREF(arr);
    return res;
}

static PyMethodDef functions[] = {
    {"_split_words", (PyCFunction)(void (*)(void))py_split_words, METH_VARARGS | METH_KEYWORDS,
     "_split_words(text, mode=0) -> list[str]; mode 0 default, 1 Japanese fallback, 2 Korean."},
    {"audio_token_count", (PyCFunction)(void (*)(void))py_audio_token_count, METH_VARARGS | METH_KEYWORDS,
     "audio_token_count(valid_frames) -> int\n\nAudio tokens for valid mel frames: 13 per full 100-frame "
     "chunk + ceil(rest/8)."},
    {"aligner_prompt_ids", (PyCFunction)(void (*)(void))py_aligner_prompt_ids, METH_VARARGS | METH_KEYWORDS,
     "aligner_prompt_ids(tokenizer, words, n_audio_tokens) -> list[int]\n\n<|audio_start|> + pads + "
     "<|audio_end|> + each word's ids followed by two <timestamp>."},
    {"_asr_prompt_ids", (PyCFunction)(void (*)(void))py_asr_prompt_ids, METH_VARARGS | METH_KEYWORDS,
     "_asr_prompt_ids(tokenizer, n_audio_tokens, language=None, context='') -> list[int] (language: canonical name)."},
    {"repair_timestamps", (PyCFunction)(void (*)(void))py_repair_timestamps, METH_VARARGS | METH_KEYWORDS,
     "repair_timestamps(ms) -> list[int]\n\nMonotonic repair of raw aligner milliseconds (LIS, snap, "
     "interpolate, truncate), as transformers' _fix_timestamps."},
    {NULL, NULL, 0, NULL},
};

int qa_py_text_init(PyObject *module)
{
    if (!qa_py_add_type(module, &tokenizer_spec))
        return -1;
    return PyModule_AddFunctions(module, functions);
}

/* py.h — shared by the binding files in csrc/py/, the only folder that includes Python.h / numpy.
 *
 * The binding is split by area (one file per group of Python entry points: module.c holds module
 * init, exceptions and the status -> exception mapping; py_<area>.c convert arguments and results for
 * one area). No engine file includes this header.
 */
#ifndef QA_PY_H
#define QA_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL qa_numpy_api
#ifndef QA_PY_MODULE_C
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "../core/cancel.h"
#include "../core/status.h"

/* Per-module state (multi-phase init): the exception classes and the heap types. */
typedef struct qa_py_state {
    PyObject *Qwen3AlignError;
    PyObject *ModelLoadError;
    PyObject *OutOfMemoryError;
    PyObject *AudioError;
    PyObject *InputError;
    PyObject *types[8]; /* heap types created by the area files (kept alive here) */
    int n_types;
} qa_py_state;

extern PyModuleDef qa_py_moduledef;

qa_py_state *qa_py_state_of_module(PyObject *module);
qa_py_state *qa_py_state_of_type(PyTypeObject *tp);

/* Raise the exception that matches e->code with e->msg; always returns NULL. */
PyObject *qa_py_raise(qa_py_state *st, const qa_err *e);

/* Raise InputError with a printf-style message; returns NULL. */
PyObject *qa_py_input_error(qa_py_state *st, const char *fmt, ...);

/* Create a heap type from spec with the module as its module, add it under its name, keep it in the
 * state. Returns the type (borrowed from the state) or NULL with an exception set. */
PyTypeObject *qa_py_add_type(PyObject *module, PyType_Spec *spec);

/* Models compute methods (py_engine.c), listed in the Models type's method table (py_models.c).
 * qa_py_models_enter takes a free worker of the object (waiting without the GIL, interruptible) and
 * returns the models with the worker's index in *worker (NULL + InputError when closed);
 * qa_py_models_leave gives that worker back. */
struct qa_models;
struct qa_models *qa_py_models_enter(PyObject *self, int *worker);
void qa_py_models_leave(PyObject *self, int worker);
PyObject *qa_py_audio_embeddings(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qa_py_aligner_logits(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qa_py_align_forward(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qa_py_align_pack(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qa_py_align_pack_limits(PyObject *self, PyObject *noargs);
PyObject *qa_py_asr_generate(PyObject *self, PyObject *args, PyObject *kw);
/* The same from 16 kHz samples: the features are computed by the engine's backend (CUDA: on the device). */
PyObject *qa_py_mel_features(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qa_py_audio_embeddings_from_audio(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qa_py_aligner_logits_from_audio(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qa_py_align_forward_audio(PyObject *self, PyObject *args, PyObject *kw);
PyObject *qa_py_asr_generate_from_audio(PyObject *self, PyObject *args, PyObject *kw);
/* Ctrl-C while the engine runs without the GIL (py_cancel.c): a qa_cancel hook whose check briefly
 * takes the GIL and runs PyErr_CheckSignals (throttled to one look per QA_PY_CANCEL_PERIOD_S),
 * leaving the handler's exception (KeyboardInterrupt) pending when it says stop. ctx: caller
 * storage that lives for the engine call. Call with the GIL held. */
#define QA_PY_CANCEL_PERIOD_S 0.05
typedef struct qa_py_cancel_ctx {
    double next_check; /* monotonic seconds */
    PyObject *flag;    /* owned, may be NULL: the calling thread's cancel flag (qa_py_set_thread_cancel) */
} qa_py_cancel_ctx;
struct qa_cancel qa_py_cancel_hook(qa_py_cancel_ctx *ctx);
/* Drop what the hook holds (the flag). With the GIL; safe on a zeroed ctx. */
void qa_py_cancel_clear(qa_py_cancel_ctx *ctx);
/* _set_thread_cancel(flag): remember a bytearray in this thread's state dict; engine calls made on
 * the thread afterwards also stop (KeyboardInterrupt) once flag[0] != 0 — how a batch stops its
 * worker threads, where PyErr_CheckSignals never sees Ctrl-C. None forgets it. */
PyObject *qa_py_set_thread_cancel(PyObject *flag);
#define QA_PY_ENGINE_METHODS                                                                          \
    {"audio_embeddings", (PyCFunction)(void (*)(void))qa_py_audio_embeddings, METH_VARARGS | METH_KEYWORDS, \
     "audio_embeddings(features, valid_frames, model='aligner') -> float32 [N_audio, hidden]"},       \
    {"aligner_logits", (PyCFunction)(void (*)(void))qa_py_aligner_logits, METH_VARARGS | METH_KEYWORDS,     \
     "aligner_logits(features, valid_frames, input_ids) -> float32 [n_timestamps, classify_num]"},    \
    {"_align_forward", (PyCFunction)(void (*)(void))qa_py_align_forward, METH_VARARGS | METH_KEYWORDS,     \
     "_align_forward(features, valid_frames, input_ids) -> (classes int32 [n], probs float32 [n])"},  \
    {"_align_pack", (PyCFunction)(void (*)(void))qa_py_align_pack, METH_VARARGS | METH_KEYWORDS,           \
     "_align_pack(clips, *, logits=False) -> (classes, probs, counts) or (logits, counts): clips = "   \
     "[(features, valid_frames, input_ids) or (samples, input_ids), ...] in ONE aligner forward"},    \
    {"_align_pack_limits", (PyCFunction)qa_py_align_pack_limits, METH_NOARGS,                          \
     "_align_pack_limits() -> dict of the totals a pack may have (the plan's longest request)"},      \
    {"asr_generate", (PyCFunction)(void (*)(void))qa_py_asr_generate, METH_VARARGS | METH_KEYWORDS,         \
     "asr_generate(features, valid_frames, prompt_ids, max_new_tokens, min_new_tokens=0) -> "         \
     "(ids int32 [n], first_logits float32 [vocab])"},                                                \
    {"mel_features", (PyCFunction)(void (*)(void))qa_py_mel_features, METH_VARARGS | METH_KEYWORDS,         \
     "mel_features(samples) -> float32 [128, valid_frames]: log_mel(samples) computed by the model "  \
     "set's backend (CUDA: on the device)"},                                                          \
    {"audio_embeddings_from_audio", (PyCFunction)(void (*)(void))qa_py_audio_embeddings_from_audio,         \
     METH_VARARGS | METH_KEYWORDS,                                                                    \
     "audio_embeddings_from_audio(samples, model='aligner') -> float32 [N_audio, hidden]"},           \
    {"aligner_logits_from_audio", (PyCFunction)(void (*)(void))qa_py_aligner_logits_from_audio,             \
     METH_VARARGS | METH_KEYWORDS,                                                                    \
     "aligner_logits_from_audio(samples, input_ids) -> float32 [n_timestamps, classify_num]"},        \
    {"_align_forward_audio", (PyCFunction)(void (*)(void))qa_py_align_forward_audio,                        \
     METH_VARARGS | METH_KEYWORDS,                                                                    \
     "_align_forward_audio(samples, input_ids) -> (classes int32 [n], probs float32 [n])"},           \
    {"asr_generate_from_audio", (PyCFunction)(void (*)(void))qa_py_asr_generate_from_audio,                 \
     METH_VARARGS | METH_KEYWORDS,                                                                    \
     "asr_generate_from_audio(samples, prompt_ids, max_new_tokens, min_new_tokens=0) -> "             \
     "(ids int32 [n], first_logits float32 [vocab])"},

/* Area hooks, each defined in its py_<area>.c: add functions/types to the module. 0 ok, -1 error. */
int qa_py_frontend_init(PyObject *module); /* py_frontend.c: load_audio, log_mel */
int qa_py_text_init(PyObject *module);     /* py_text.c: Tokenizer, split_words, prompts, repair */
int qa_py_models_init(PyObject *module);   /* py_models.c: plan, Models, memory report, engine */
int qa_py_longaudio_init(PyObject *module); /* py_longaudio.c: _chunk_bounds (quiet-point cuts) */
int qa_py_hooks_init(PyObject *module);     /* py_hooks.c: parsers, counters, BLAS threads (tests) */

#endif

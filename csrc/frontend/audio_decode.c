/* audio_decode.c — audio files (path or bytes) to interleaved float32 with libsndfile.
 *
 * Contract: qa_audio_decode_file / qa_audio_decode_memory fill a qa_pcm whose data the caller frees
 * (qa_pcm_free). Integer PCM comes back scaled by libsndfile to [-1, 1) (int16 / 32768, like
 * soundfile.read(dtype="float32") in the reference loader); float files come back as stored, so a
 * peak above 1 survives for audio.c to scale down. Every failure is QA_ERR_AUDIO with the file name
 * and libsndfile's reason. Frames are read in chunks, so formats whose header gives no (or a wrong)
 * frame count (MP3, OGG, streamed WAV) decode completely.
 * This file and resample.c are the only ones that call audio libraries; setup.py leaves this file
 * out when QA_NO_AUDIO_LIBS is set (audio.c then only accepts sample arrays).
 */
#include "audio_decode.h"

#include <errno.h>
#include <sndfile.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/alloc.h"

#define CHUNK_FRAMES 65536
/* The header's frame count sizes the first buffer only up to this many frames (~95 s at 44.1 kHz);
 * longer files grow by doubling. A header can lie: a 443-byte FLAC whose STREAMINFO claims 2^31
 * samples must not make us ask for 17 GB (found by tests/fuzz/fuzz_audio.c). */
#define MAX_TRUSTED_FRAMES ((sf_count_t)1 << 22)

/* In-memory file for sf_open_virtual: a read-only cursor over the caller's bytes. */
typedef struct mem_file {
    const unsigned char *buf;
    sf_count_t len, pos;
} mem_file;

static sf_count_t mem_len(void *user) { return ((mem_file *)user)->len; }
static sf_count_t mem_tell(void *user) { return ((mem_file *)user)->pos; }

static sf_count_t mem_seek(sf_count_t offset, int whence, void *user)
{
    mem_file *m = user;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->len;
    sf_count_t to = base + offset;
    if (to < 0 || to > m->len)
        return -1;
    m->pos = to;
    return to;
}

static sf_count_t mem_read(void *ptr, sf_count_t count, void *user)
{
    mem_file *m = user;
    sf_count_t n = count < m->len - m->pos ? count : m->len - m->pos;
    if (n <= 0)
        return 0;
    memcpy(ptr, m->buf + m->pos, (size_t)n);
    m->pos += n;
    return n;
}

static sf_count_t mem_write(const void *ptr, sf_count_t count, void *user)
{
    (void)ptr, (void)count, (void)user;
    return 0;
}

/* Read every frame of an open file into out (grows the buffer chunk by chunk). */
static qa_status read_all(SNDFILE *f, const SF_INFO *info, const char *name, qa_pcm *out, qa_err *e)
{
    size_t ch = (size_t)info->channels, cap = CHUNK_FRAMES, n = 0;
    if (info->frames > 0 && info->frames < MAX_TRUSTED_FRAMES)
        cap = (size_t)info->frames + 1; /* +1: a correct count needs no second pass */
    else if (info->frames >= MAX_TRUSTED_FRAMES)
        cap = (size_t)MAX_TRUSTED_FRAMES;
    float *buf = qa_malloc_n(cap, ch * sizeof(float), e);
    if (!buf)
        return QA_ERR_OOM;
    for (;;) {
        if (n == cap) {
            float *grown = qa_realloc_n(buf, cap * 2, ch * sizeof(float), e);
            if (!grown) {
                qa_free(buf);
                return QA_ERR_OOM;
            }
            buf = grown;
            cap *= 2;
        }
        sf_count_t got = sf_readf_float(f, buf + n * ch, (sf_count_t)(cap - n));
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    if (sf_error(f) != SF_ERR_NO_ERROR && n == 0) {
        qa_free(buf);
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: cannot read samples (libsndfile: %s)", name, sf_strerror(f));
    }
    if (n == 0) {
        qa_free(buf);
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: the file has a header but no audio samples", name);
    }
    out->data = buf;
    out->frames = n;
    out->channels = info->channels;
    out->sample_rate = info->samplerate;
    return QA_OK;
}

static qa_status decode_open(SNDFILE *f, const SF_INFO *info, const char *name, qa_pcm *out, qa_err *e)
{
    if (!f)
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: not a readable audio file (libsndfile: %s)", name, sf_strerror(NULL));
    qa_status s = QA_OK;
    if (info->channels <= 0)
        s = QA_FAIL(e, QA_ERR_AUDIO, "%s: the file declares %d channels", name, info->channels);
    else
        s = read_all(f, info, name, out, e);
    sf_close(f);
    return s;
}

qa_status qa_audio_decode_file(const char *path, qa_pcm *out, qa_err *e)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st) != 0)
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: cannot open audio file (%s)", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: is a directory, expected an audio file", path);
    if (st.st_size == 0)
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: the file is empty (0 bytes)", path);
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *f = sf_open(path, SFM_READ, &info);
    return decode_open(f, &info, path, out, e);
}

qa_status qa_audio_decode_memory(const void *buf, size_t len, const char *name, qa_pcm *out, qa_err *e)
{
    memset(out, 0, sizeof *out);
    if (len == 0)
        return QA_FAIL(e, QA_ERR_AUDIO, "%s: no bytes (empty audio file)", name);
    mem_file m = {buf, (sf_count_t)len, 0};
    SF_VIRTUAL_IO io = {mem_len, mem_seek, mem_read, mem_write, mem_tell};
    SF_INFO info;
    memset(&info, 0, sizeof info);
    SNDFILE *f = sf_open_virtual(&io, SFM_READ, &info, &m);
    return decode_open(f, &info, name, out, e);
}

void qa_pcm_free(qa_pcm *pcm)
{
    qa_free(pcm->data);
    memset(pcm, 0, sizeof *pcm);
}

const char *qa_audio_decoder_version(void)
{
    return sf_version_string();
}

/*
 * wire.c - encoding and decoding call messages.
 *
 * Blobs and strings are a 64-bit length (UINT64_MAX for NULL), padding to a 16-byte boundary, then
 * the bytes: a reader can hand the callee a pointer into the (private) message for any
 * element type without breaking its alignment.  Decoding
 * reads from private memory and checks every length against what is left and against what the
 * generated code expects before anything is used.
 *
 * A descriptor (QPM_FD) is an int32 in the message: a negative value is itself, any other the
 * index of a descriptor sent beside the message (transport.c sends and receives them).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* as the runtime's other files: aligned_alloc under the program's -std=gnu99 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qrt.h"

/*
 * Scratch: each thread's memory for the copies a call makes (a message taken out of its channel,
 * a callee's output buffer), used last in, first out, so that a call of any size up to
 * QRT_SCRATCH costs no allocation after the thread's first.  Anything that does not fit comes
 * from malloc.  A release gives back everything taken since its mark; the copies of one call are
 * all given back when it ends, whatever the order, and nested calls take and give above them.
 * The scratch starts as zeros, and its bytes from scratch_clean on are known to be zeros still:
 * an out buffer taken there is not zeroed again (qrt_out_alloc, qrt_out_free).
 */
#define QRT_SCRATCH (64u * 1024u)

static __thread uint8_t *scratch_base;
static __thread size_t scratch_top;
static __thread size_t scratch_clean;   /* the scratch's bytes from here to its end are all zero */
/* The out buffer qrt_out_free gave back with its written bytes not yet zeroed again: qrt__settle,
 * after the answer is out, zeroes them (the caller need not wait for that); a take of the scratch
 * before then cancels it, and the bytes count as not clean, as any taken bytes do. */
static __thread uint8_t *settle_at;
static __thread size_t settle_len, settle_mark, settle_taken;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *base)
{
    munmap(base, QRT_SCRATCH);
    scratch_base = NULL;
}

/* What the scratch takes for n bytes: n rounded up to 16, so that every copy in it is aligned as
 * malloc's memory is. */
static size_t scratch_size(size_t n)
{
    return (n + 15u) & ~(size_t)15u;
}

static void scratch_make_key(void)
{
    if (pthread_key_create(&scratch_key, scratch_free) != 0)
        abort();    /* only fails when the process is out of keys: an invariant of ours broke */
}

void *qrt__scratch_take(size_t n, size_t *mark)
{
    *mark = SIZE_MAX;
    settle_at = NULL;   /* its bytes stay below scratch_clean: whoever takes them zeroes what it needs */
    n = scratch_size(n);
    if (!n || n > QRT_SCRATCH - scratch_top)
        return NULL;
    if (!scratch_base) {
        pthread_once(&scratch_once, scratch_make_key);
        /* Pages of zeros, each made when first written: a thread that never takes much costs
         * little, and all of it starts clean. */
        void *base = mmap(NULL, QRT_SCRATCH, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED)
            return NULL;
        scratch_base = base;
        scratch_clean = 0;
        pthread_setspecific(scratch_key, scratch_base);
    }
    *mark = scratch_top;
    scratch_top += n;
    if (scratch_clean < scratch_top)
        scratch_clean = scratch_top;    /* whoever took these bytes may write them */
    return scratch_base + *mark;
}

void qrt__scratch_give(size_t mark)
{
    if (mark < scratch_top)
        scratch_top = mark;
}

/* The out buffer qrt_put_back sent last, its length rounded as the scratch takes it, and how much
 * of it was not zero (the rest is): qrt_out_free zeroes only that much of it again.  A callee's
 * out buffer is kilobytes where what it writes is often a few bytes, and zeroing all of it for
 * every call, on the thread's stack of scratch that the next call takes again, was most of what
 * a domain wrote per call (kvstore's cache_get: 4 KiB). */
static __thread const uint8_t *back_at;
static __thread size_t back_len, back_taken;

void *qrt_out_alloc(size_t n, size_t *mark)
{
    size_t clean = scratch_clean;
    uint8_t *p = qrt__scratch_take(n, mark);
    back_at = NULL;     /* only a put_back of this buffer, after this, may tell what it holds */
    if (p) {
        size_t taken = scratch_size(n);
        if (*mark < clean)
            memset(p, 0, clean - *mark < taken ? clean - *mark : taken);
        return p;
    }
    return calloc(1, n ? n : 1);
}

void qrt_out_free(void *p, size_t mark)
{
    if (mark == SIZE_MAX) {
        free(p);
    } else {
        qrt__scratch_give(mark);
        if (p == back_at) {
            /* Its bytes past back_len were found zero; zeroing the ones before (qrt__settle)
             * makes all of it zero again. */
            settle_at = p;
            settle_len = back_len;
            settle_mark = mark;
            settle_taken = back_taken;
        }
    }
    back_at = NULL;
}

void qrt__settle(void)
{
    if (!settle_at)
        return;
    memset(settle_at, 0, settle_len);
    /* When nothing above it was taken since, the scratch is clean from it on. */
    if (scratch_clean <= settle_mark + settle_taken)
        scratch_clean = settle_mark;
    settle_at = NULL;
}

#define QRT_NULL_LEN UINT64_MAX
#define QRT_ALIGN 16u

static size_t padding(size_t pos)
{
    return (QRT_ALIGN - pos % QRT_ALIGN) % QRT_ALIGN;
}

void qrt_put_blob(struct qrt_wr *w, const void *data, size_t n)
{
    static const uint8_t zeros[QRT_ALIGN];
    uint64_t len = data ? (uint64_t)n : QRT_NULL_LEN;
    qrt_put(w, &len, sizeof len);
    if (data) {
        size_t pad = padding(w->len);
        if (pad && !w->err && w->cap - w->len >= QRT_ALIGN) {
            memcpy(w->base + w->len, zeros, QRT_ALIGN);     /* one store; what is past pad is overwritten */
            w->len += pad;
        } else {
            qrt_put(w, zeros, pad);
        }
        qrt_put(w, data, n);
    }
}

static const void *get_bytes(struct qrt_rd *r, uint64_t *len, int *present);

/* 16 bytes as two words, which GCC keeps in one vector register (SSE2 on x86-64). */
typedef uint64_t qrt__v16 __attribute__((vector_size(16)));

static inline qrt__v16 load16(const uint8_t *p)
{
    qrt__v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* How much of b[0, m) is left once the 128-byte blocks at its end that are all zero are skipped,
 * four 32-byte AVX2 vectors ORed and tested at a time (on a CPU that has AVX2; else m). */
__attribute__((target("avx2"))) static size_t skip_zeros_avx2(const uint8_t *b, size_t m)
{
    for (; m >= 128; m -= 128) {
        const __m256i *at = (const __m256i *)(b + m - 128);
        __m256i any = _mm256_or_si256(_mm256_or_si256(_mm256_loadu_si256(at), _mm256_loadu_si256(at + 1)),
                                      _mm256_or_si256(_mm256_loadu_si256(at + 2), _mm256_loadu_si256(at + 3)));
        if (!_mm256_testz_si256(any, any))
            break;
    }
    return m;
}

static size_t skip_zeros(const uint8_t *b, size_t m)
{
    uint64_t last;      /* a buffer written to its end (often) needs no scan: no call for it */
    if (m < 128 || (memcpy(&last, b + m - sizeof last, sizeof last), last))
        return m;
    return __builtin_cpu_supports("avx2") ? skip_zeros_avx2(b, m) : m;
}
#else
static size_t skip_zeros(const uint8_t *b, size_t m)
{
    (void)b;
    return m;
}
#endif

void qrt_put_back(struct qrt_wr *w, const void *data, size_t n)
{
    if (!data) {
        qrt_put_blob(w, NULL, 0);
        return;
    }
    /* The bytes up to the last one that is not zero (an out buffer is often kilobytes, and what
     * the callee wrote in it short): found 128 bytes at a time with AVX2 where the CPU has it,
     * then 64 at a time as four 16-byte vectors ORed in registers (SSE2 on x86-64: the whole
     * scan where there is no AVX2), then a word, then a byte at a time. */
    const uint8_t *b = data;
    size_t m = skip_zeros(b, n);
    for (; m >= 4 * sizeof(qrt__v16); m -= 4 * sizeof(qrt__v16)) {
        const uint8_t *at = b + m - 4 * sizeof(qrt__v16);
        qrt__v16 any = (load16(at) | load16(at + 16)) | (load16(at + 32) | load16(at + 48));
        if (any[0] | any[1])
            break;
    }
    for (uint64_t word; m >= sizeof word; m -= sizeof word) {
        memcpy(&word, b + m - sizeof word, sizeof word);
        if (word)
            break;
    }
    while (m && !b[m - 1])
        m--;
    back_at = b;
    back_len = m;
    back_taken = scratch_size(n);
    uint64_t whole = n;
    qrt_put(w, &whole, sizeof whole);
    qrt_put_blob(w, data, m);
}

const void *qrt_get_back(struct qrt_rd *r, size_t expect, int *present, size_t *sent)
{
    uint64_t whole;
    *sent = 0;
    qrt_get(r, &whole, sizeof whole);
    *present = 0;
    if (r->err || whole == QRT_NULL_LEN)
        return NULL;
    uint64_t m;
    const void *p = get_bytes(r, &m, present);
    if (*present && (whole != expect || m > whole)) {
        r->err = -EBADMSG;      /* the peer's count disagrees with ours, or says more than it holds */
        *present = 0;
        return NULL;
    }
    *sent = (size_t)m;
    return p;
}

void qrt_put_string(struct qrt_wr *w, const char *s)
{
    qrt_put_blob(w, s, s ? strlen(s) + 1 : 0);
}

static const void *get_bytes(struct qrt_rd *r, uint64_t *len, int *present)
{
    qrt_get(r, len, sizeof *len);
    *present = 0;
    if (r->err || *len == QRT_NULL_LEN)
        return NULL;
    size_t pad = padding(r->pos);
    if (pad > r->len - r->pos) {
        r->err = -EBADMSG;
        return NULL;
    }
    r->pos += pad;
    if (*len > r->len - r->pos) {
        r->err = -EBADMSG;
        return NULL;
    }
    const void *p = r->base + r->pos;
    r->pos += (size_t)*len;
    *present = 1;
    return p;
}

const void *qrt_get_blob(struct qrt_rd *r, size_t expect, int *present)
{
    uint64_t len;
    const void *p = get_bytes(r, &len, present);
    if (*present && len != expect) {
        r->err = -EBADMSG;      /* the peer's count disagrees with ours */
        *present = 0;
        return NULL;
    }
    return p;
}

const char *qrt_get_string(struct qrt_rd *r, int *present, size_t *len)
{
    uint64_t n;
    const char *p = get_bytes(r, &n, present);
    if (!*present)
        return NULL;
    /* A string is at least its NUL, and its only NUL is its last byte. */
    if (n == 0 || p[n - 1] != '\0' || memchr(p, '\0', (size_t)n - 1)) {
        r->err = -EBADMSG;
        *present = 0;
        return NULL;
    }
    *len = (size_t)n - 1;
    return p;
}

void qrt_put_fd(struct qrt_wr *w, int fd, int give)
{
    int32_t v = fd;
    if (fd >= 0 && fcntl(fd, F_GETFD) < 0) {
        if (!w->err)
            w->err = -EBADF;        /* not open: nothing to send, nor to close */
    } else if (fd >= 0 && w->nfds >= QRT_MAX_FDS) {
        if (!w->err)
            w->err = -E2BIG;
        if (give)
            close(fd);              /* (a dispatcher's result is put first: never this one) */
    } else if (fd >= 0) {
        /* Recorded even when the message already failed: the list is also what is closed. */
        v = (int32_t)w->nfds;
        w->fds[w->nfds] = fd;
        if (give)
            w->given |= 1u << w->nfds;
        w->nfds++;
    }
    qrt_put(w, &v, sizeof v);
}

int qrt_get_fd(struct qrt_rd *r)
{
    int32_t v;
    qrt_get(r, &v, sizeof v);
    if (r->err)
        return -1;
    if (v < 0)
        return v;
    if ((uint32_t)v >= r->nfds || r->fds[v] < 0) {
        r->err = -EBADMSG;      /* names a descriptor that did not come with the message */
        return -1;
    }
    return r->fds[v];
}

void qrt_keep_fd(struct qrt_rd *r, int fd)
{
    for (uint32_t i = 0; fd >= 0 && i < r->nfds && i < QRT_MAX_FDS; i++)
        if (r->fds[i] == fd) {
            r->fds[i] = -1;
            return;
        }
}

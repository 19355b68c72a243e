/*
 * qrt.h - the Quarantine runtime, as seen by generated code.
 *
 * A split program is one main process and one process per isolated domain.  Each domain owns a
 * shared-memory region (an anonymous memfd, so nothing is left behind when the processes go) of
 * channels.  A channel is a conversation between one calling thread and one serving thread:
 * messages alternate on it, so a call that calls back (a callback, or a call to a third domain,
 * which the main process relays) is simply a nested message on the same channel.  A calling
 * thread holds a channel for the length of its outermost call into a domain only: any number of
 * threads share a pool of channels that grows with the calls in flight at once.
 *
 * Public names are qrt_; functions return 0 or a negative errno.
 */
#ifndef QRT_H
#define QRT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define QRT_MAIN_DOMAIN 0

/* The largest message, arguments or reply (a channel's buffer): no reply can carry back more. */
#define QRT_MESSAGE_MAX (256u * 1024u)

/* The most descriptors one message carries (QPM_FD arguments of one call, or a result): a call
 * that would pass more fails like a message too large (-E2BIG). */
#define QRT_MAX_FDS 8

/* A message being written into a channel buffer.  Writes past the end set err to -E2BIG.  The
 * descriptors it carries (QPM_FD) travel beside it; those in `given` are the writer's to close
 * once they are sent (or cannot be). */
struct qrt_wr {
    uint8_t *base;
    size_t cap;
    size_t len;
    int err;
    uint32_t nfds;
    uint32_t given;             /* bit k: fds[k] is closed once sent */
    int fds[QRT_MAX_FDS];
};

/* A message being read.  It lives in private memory (copied out of the channel first), so a
 * peer cannot change it while it is checked and used; reads past the end set err to -EBADMSG.
 * The descriptors that came with it are this process's own, closed with the message unless
 * kept (qrt_keep_fd). */
struct qrt_rd {
    const uint8_t *base;
    size_t len;
    size_t pos;
    int err;
    uint32_t nfds;
    int fds[QRT_MAX_FDS];       /* -1 once kept */
    size_t mark;                /* where base came from: the thread's scratch, or SIZE_MAX */
};

typedef void (*qrt_dispatch_fn)(struct qrt_rd *args, struct qrt_wr *reply);

/* What the plan says to do when a domain faults (crashes, or hangs past call_timeout_ms). */
enum { QRT_ON_FAULT_RETRY = 0, QRT_ON_FAULT_ERROR = 1, QRT_ON_FAULT_ABORT = 2 };
struct qrt_policy {
    int on_fault;
    int max_restarts;       /* within window_ms; one more fault escalates to abort */
    int window_ms;
    int call_timeout_ms;    /* 0: no watchdog */
};

/* What generated code tells the runtime about the program. */
struct qrt_program {
    const char *name;                 /* program name, for messages */
    int ndomains;                     /* including the main domain, index 0 */
    const char *const *domains;       /* domain names; [0] is "main" */
    uint32_t nfunctions;              /* function ids are 0 .. nfunctions-1 */
    const char *const *functions;     /* their names, for messages */
    const int *function_domain;       /* the domain implementing each function */
    const qrt_dispatch_fn *dispatch;  /* this executable's dispatchers, by function id (may be NULL) */
    void (*const *inits)(void);       /* QPM_INIT functions of this executable, NULL-terminated */
    const struct qrt_policy *policies;    /* by domain */
    const char *plan;                     /* the plan file, for reports */
    const char *const *domain_components; /* by domain: its components, comma-separated */
    int nsymbols;                         /* every function of the program, sorted by name ... */
    const char *const *symbols;
    const char *const *symbol_components; /* ... and the component it belongs to */
    const char *const *symbol_files;      /* ... the file of its definition, as the model has it */
    const int *symbol_lines;              /* ... and the line (both may be NULL: not known) */
    /* By domain: may_call[d][id] is 1 when domain d's code calls function (or callback) id,
     * which the main process then serves it or relays for it; NULL for the main domain. */
    const unsigned char *const *may_call;
};

/* Main process: start every domain (called from a constructor before main()). */
int qrt_start(const struct qrt_program *program);

/* Monolithic build: run the QPM_INIT functions and watch for a crash to report. */
int qrt_mono_start(const struct qrt_program *program);

/* Domain executable: serve calls forever. */
int qrt_domain_main(const struct qrt_program *program, int domain, int argc, char **argv);

/* One crossing call: begin gives a writer for the arguments; invoke sends them, serves any calls
 * that come back, and gives a reader for the reply; end releases the channel's reply. */
struct qrt_call {
    struct qrt_wr args;
    struct qrt_rd reply;        /* a private copy: in inline_reply when it fits, else malloc'd */
    uint32_t function;
    int domain;                 /* the domain called (main process) */
    uint32_t generation;        /* of that domain, when the call began */
    uint32_t slot;              /* the channel's index in that domain (main process) ... */
    uint32_t seq;               /* ... and which of the calls on that channel this one is */
    int acquired;               /* begin took the channel (or a nesting level of it): end gives it back */
    int timeout_ms;             /* the watchdog's (0: none) ... */
    long long deadline_ms;      /* ... and its deadline, 0 until first needed */
    void *chan;
    _Alignas(16) uint8_t inline_reply[256];
};

int qrt_call_begin(struct qrt_call *call, uint32_t function);

/* Callbacks: a function pointer crosses as a token; the receiver binds it to the channel of the
 * call it arrived with (qrt_current_channel) and calls back over that channel (callback_begin). */
void *qrt_current_channel(void);
int qrt_callback_begin(struct qrt_call *call, uint32_t id, void *chan);
int qrt_call_invoke(struct qrt_call *call);
void qrt_call_end(struct qrt_call *call);

/* A failed crossing (a malformed message, no such function): report it and end the program. */
void qrt_fatal(uint32_t function, int err) __attribute__((noreturn));

/* A call that failed with err on its attempt-th try (0 first): when the domain died, waits for it
 * to serve again and says what to do.  The call whose thread crashed or hung is the culprit and
 * gets the plan's on_fault; every other call in flight is innocent and is issued again, as is a
 * call that arrived during the restart.  Under on_fault: abort the program does not get this far. */
enum {
    QRT_FAULT_FAIL = 0,     /* return the fault_value */
    QRT_FAULT_RETRY = 1,    /* re-issue the call on the fresh process (once) */
    QRT_FAULT_WAITED = 2,   /* innocent, or arrived during the restart: issue it again, no try used */
};
int qrt_fault(struct qrt_call *call, int err, int attempt);

/* QPM_OPAQUE values in the main process: a pointer of main's crosses to domain d as a token, and
 * only a token main handed to d turns back into a pointer (else -EBADMSG); the domain's own
 * handles pass unchanged.  Identity in a domain.  qrt_peer_domain: the domain a call goes to
 * (call) or, with NULL, the domain whose call this thread is serving. */
uint64_t qrt_handle_out(int domain, const void *p);
int qrt_handle_in(int domain, uint64_t v, void **out);
int qrt_peer_domain(const struct qrt_call *call);

/* Wire helpers.  qrt_put and qrt_get are inline: most of their calls are of a fixed size (a
 * scalar argument or result), which the compiler then copies with a move, not a call. */
static inline void qrt_put(struct qrt_wr *w, const void *data, size_t n)
{
    if (w->err)
        return;
    if (n > w->cap - w->len) {
        w->err = -E2BIG;
        return;
    }
    if (n)
        __builtin_memcpy(w->base + w->len, data, n);
    w->len += n;
}

static inline void qrt_get(struct qrt_rd *r, void *out, size_t n)
{
    if (r->err || n > r->len - r->pos) {
        r->err = -EBADMSG;
        __builtin_memset(out, 0, n);
        return;
    }
    __builtin_memcpy(out, r->base + r->pos, n);
    r->pos += n;
}

void qrt_put_blob(struct qrt_wr *w, const void *data, size_t n);   /* length-prefixed, NULL allowed */
void qrt_put_string(struct qrt_wr *w, const char *s);              /* length-prefixed, NULL allowed */
/* A buffer going back to its caller (QPM_OUT, QPM_INOUT): its length, then its bytes up to the
 * last one that is not zero (a 4 KiB output buffer holding a short value crosses in a few bytes);
 * the reader gets the `sent` bytes that came and zeroes the rest. */
void qrt_put_back(struct qrt_wr *w, const void *data, size_t n);
const void *qrt_get_back(struct qrt_rd *r, size_t expect, int *present, size_t *sent);
/* A blob of exactly `expect` bytes (or NULL): returns a pointer into the message or NULL. */
const void *qrt_get_blob(struct qrt_rd *r, size_t expect, int *present);
/* A string: returns a pointer into the message (NUL-terminated, checked) or NULL. */
const char *qrt_get_string(struct qrt_rd *r, int *present, size_t *len);
/* QPM_FD.  A negative value crosses as itself; any other must be an open descriptor (else the
 * message cannot be made: -EBADF), and the receiver gets a descriptor of its own for the same
 * open file.  With `give`, the writer's descriptor is closed once sent (a dispatcher's result). */
void qrt_put_fd(struct qrt_wr *w, int fd, int give);
/* The value, or the message's own descriptor for it (-1 and -EBADMSG when the message has none
 * such); closed with the message unless kept, which makes it the caller's. */
int qrt_get_fd(struct qrt_rd *r);
void qrt_keep_fd(struct qrt_rd *r, int fd);

/* A callee's output buffer of n bytes, zeroed (a dispatcher's): from the thread's scratch memory
 * when it fits, else calloc'd; qrt_out_free gives it back (mark says which). */
void *qrt_out_alloc(size_t n, size_t *mark);
void qrt_out_free(void *p, size_t mark);

/* Element counts from count expressions, checked for overflow: -1 when they do not fit. */
static inline size_t qrt_bytes(long long count, size_t elem)
{
    if (count < 0 || (elem && (unsigned long long)count > SIZE_MAX / elem))
        return (size_t)-1;
    return (size_t)count * elem;
}

#endif /* QRT_H */

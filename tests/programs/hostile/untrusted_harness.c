/*
 * untrusted_harness.c - the generated code of the main process of tests/programs/untrusted
 * (GENERATED: the path of its main.c), driven with crafted messages from a peer that lies.
 *
 * The transport is replaced by a fake one (the wire encoding is the real runtime/wire.c): a call
 * "sent" gets the reply prepared in `reply`, and qrt_fault says retry once, then fail.  Each
 * check prints "ok <what>" or "FAIL <what>"; the exit status is the number of failures.
 *
 * What must hold (SPEC §3, trust): a reply is used whole or not at all (nothing of the caller's
 * is written unless the whole reply checked out, and a failed call returns the fault value);
 * a dispatcher bounds every size the peer sends before it allocates or calls anything; a
 * callback token is called back only through its own type, over the channel it was sent on.
 */
#include GENERATED

#include <stdio.h>

int epoch;
static int app_log_calls;

int app_log(int x)
{
    app_log_calls++;
    return x + 1;
}

static int twice(int x) { return 2 * x; }

/* The fake transport. */
static uint8_t args_buf[1 << 16], reply_buf[1 << 16];
static struct qrt_wr reply = {.base = reply_buf, .cap = sizeof reply_buf};
static int begins, faults;
static void *current_chan;
static void *const CHAN_A = (void *)0x1000, *const CHAN_B = (void *)0x2000;

int qrt_start(const struct qrt_program *program)
{
    (void)program;
    return 0;
}

int qrt_call_begin(struct qrt_call *call, uint32_t function)
{
    memset(call, 0, sizeof *call);
    call->function = function;
    call->chan = CHAN_A;
    call->args = (struct qrt_wr){.base = args_buf, .cap = sizeof args_buf};
    begins++;
    return 0;
}

int qrt_callback_begin(struct qrt_call *call, uint32_t id, void *chan)
{
    qrt_call_begin(call, id);
    call->chan = chan;
    return 0;
}

void *qrt_current_channel(void) { return current_chan; }

int qrt_call_invoke(struct qrt_call *call)
{
    if (call->args.err)
        return call->args.err;
    call->reply = (struct qrt_rd){.base = reply_buf, .len = reply.len};
    return 0;
}

void qrt_call_end(struct qrt_call *call) { call->reply.base = NULL; }

int qrt_fault(struct qrt_call *call, int err, int attempt)
{
    (void)call;
    (void)err;
    faults++;
    return attempt == 0 ? QRT_FAULT_RETRY : QRT_FAULT_FAIL;
}

void qrt_fatal(uint32_t function, int err)
{
    printf("FAIL fatal in %u: %d\n", function, err);
    exit(100);
}

static int failures;

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
    failures += !ok;
}

static void start_reply(void) { reply = (struct qrt_wr){.base = reply_buf, .cap = sizeof reply_buf}; }
static void put_int(struct qrt_wr *w, int v) { qrt_put(w, &v, sizeof v); }

/* A message for a dispatcher, as a peer would send it. */
static uint8_t msg_buf[1 << 16];
static struct qrt_wr msg;
static void start_msg(void) { msg = (struct qrt_wr){.base = msg_buf, .cap = sizeof msg_buf}; }

static int dispatch(qrt_dispatch_fn fn, size_t extra)
{
    struct qrt_rd in = {.base = msg_buf, .len = msg.len + extra};
    static uint8_t out_buf[1 << 16];
    struct qrt_wr out = {.base = out_buf, .cap = sizeof out_buf};
    fn(&in, &out);
    return in.err;
}

/* peer_fill's reply: the result, the buffer (of `len` bytes, or NULL), then the shared epoch. */
static void fill_reply(int ret, const char *bytes, size_t len, int with_epoch)
{
    start_reply();
    put_int(&reply, ret);
    qrt_put_back(&reply, bytes, len);
    if (with_epoch)
        put_int(&reply, 11);
}

/* peer_fill's reply with its buffer crafted by hand: `whole` bytes long, `len` of them sent. */
static void back_reply(uint64_t whole, const char *bytes, size_t len)
{
    start_reply();
    put_int(&reply, 5);
    qrt_put(&reply, &whole, sizeof whole);
    qrt_put_blob(&reply, bytes, len);
    put_int(&reply, 11);
}

static void test_replies(void)
{
    char out[8];

    /* A good reply is used whole. */
    memcpy(out, "xxxxxxx", 8);
    epoch = 1;
    faults = 0;
    fill_reply(5, "hello\0\0", 8, 1);
    int r = peer_fill(out, 8);
    check(r == 5 && !strcmp(out, "hello") && epoch == 11 && faults == 0, "good reply used whole");

    /* A reply cut short after the buffer: the buffer and the global stay as they were. */
    memcpy(out, "xxxxxxx", 8);
    epoch = 1;
    faults = 0;
    fill_reply(5, "hello\0\0", 8, 0);
    r = peer_fill(out, 8);
    check(r == -7 && !strcmp(out, "xxxxxxx") && epoch == 1 && faults == 2,
          "truncated reply: buffer and global untouched, fault value after the retry");

    /* A reply longer than its contents is as bad. */
    memcpy(out, "xxxxxxx", 8);
    fill_reply(5, "hello\0\0", 8, 1);
    put_int(&reply, 0);
    r = peer_fill(out, 8);
    check(r == -7 && !strcmp(out, "xxxxxxx") && epoch == 1, "longer reply rejected, nothing written");

    /* A buffer of the wrong size. */
    fill_reply(5, "hey", 4, 1);
    r = peer_fill(out, 8);
    check(r == -7 && !strcmp(out, "xxxxxxx") && epoch == 1, "buffer of the wrong size rejected");

    /* A buffer whose bytes say more than its length: rejected; fewer: the rest is zeroed. */
    back_reply(8, "overlong!", 9);
    r = peer_fill(out, 8);
    check(r == -7 && !strcmp(out, "xxxxxxx") && epoch == 1, "buffer with more bytes than its length rejected");
    back_reply(8, "hi", 2);
    r = peer_fill(out, 8);
    check(r == 5 && !memcmp(out, "hi\0\0\0\0\0\0", 8) && epoch == 11, "buffer's trailing zeros written by the caller");
    epoch = 1;
    memcpy(out, "xxxxxxx", 8);

    /* A buffer the caller did not pass, and none when it did. */
    fill_reply(0, "abcdefg", 8, 1);
    r = peer_fill(NULL, 8);
    check(r == -7 && epoch == 1, "a buffer for a NULL pointer rejected");
    fill_reply(3, NULL, 0, 1);
    r = peer_fill(NULL, 8);
    check(r == 3 && epoch == 11, "NULL buffer passed back as NULL");
    epoch = 1;
    fill_reply(3, NULL, 0, 1);
    r = peer_fill(out, 8);
    check(r == -7 && !strcmp(out, "xxxxxxx") && epoch == 1, "a missing buffer rejected");

    /* A string back at another length; then at its own. */
    char word[] = "abc";
    start_reply();
    put_int(&reply, 3);
    qrt_put_string(&reply, "ABCD");
    put_int(&reply, 11);
    r = peer_upper(word);
    check(r == -7 && !strcmp(word, "abc") && epoch == 1, "string of another length rejected");
    start_reply();
    put_int(&reply, 3);
    qrt_put_string(&reply, "ABC");
    put_int(&reply, 11);
    r = peer_upper(word);
    check(r == 3 && !strcmp(word, "ABC") && epoch == 11, "string at its length used");

    /* A returned string in a reply that fails later is not returned. */
    epoch = 1;
    start_reply();
    qrt_put_string(&reply, "peer-7");
    char *name = peer_name(7);
    check(name == NULL && epoch == 1, "returned string of a bad reply not returned");
    start_reply();
    qrt_put_string(&reply, "peer-7");
    put_int(&reply, 11);
    name = peer_name(7);
    check(name && !strcmp(name, "peer-7") && epoch == 11, "returned string of a good reply returned");
    free(name);
}

static void test_dispatchers(void)
{
    /* A count of deep-copied structs larger than the message could hold: refused before any
     * allocation, and the call is not made. */
    begins = 0;
    start_msg();
    size_t n = (size_t)1 << 40;
    uint64_t k = n;
    qrt_put(&msg, &n, sizeof n);
    qrt_put(&msg, &k, sizeof k);
    put_int(&msg, 1);
    int err = dispatch(qpm__d_peer_sum, 0);
    check(err == -EBADMSG && begins == 0, "deep count beyond the message refused");

    /* A count that fits the message but disagrees with the count expression. */
    start_msg();
    n = 2;
    k = 1;
    struct rec one = {0, NULL};
    qrt_put(&msg, &n, sizeof n);
    qrt_put(&msg, &k, sizeof k);
    qrt_put(&msg, &one, sizeof one);
    qrt_put_blob(&msg, NULL, 0);
    put_int(&msg, 1);
    err = dispatch(qpm__d_peer_sum, 0);
    check(err == -EBADMSG && begins == 0, "deep count disagreeing with its expression refused");

    /* An OUT buffer bigger than any reply could carry. */
    size_t caps[] = {(size_t)1 << 40, 256 * 1024 + 1, (size_t)-1 / 2};
    for (int i = 0; i < 3; i++) {
        start_msg();
        qrt_put(&msg, &caps[i], sizeof caps[i]);
        qrt_put_blob(&msg, "", 0);
        put_int(&msg, 1);
        err = dispatch(qpm__d_peer_fill, 0);
        check(err == -EBADMSG && begins == 0, "OUT buffer beyond the message size refused");
    }

    /* Arguments followed by anything more. */
    app_log_calls = 0;
    start_msg();
    put_int(&msg, 20);
    put_int(&msg, 1);
    put_int(&msg, 99);
    err = dispatch(qpm__d_app_log, 0);
    check(err == -EBADMSG && app_log_calls == 0, "longer arguments refused, nothing called");
    start_msg();
    put_int(&msg, 20);
    put_int(&msg, 1);
    err = dispatch(qpm__d_app_log, 0);
    check(err == 0 && app_log_calls == 1, "exact arguments served");
}

/* A callback's call as the peer sends it: the token, the argument (int, or double for type 0),
 * then the shared epoch. */
static int cb_call(qrt_dispatch_fn fn, uint64_t token)
{
    start_msg();
    qrt_put(&msg, &token, sizeof token);
    if (fn == qpm__d_cb0) {
        double x = 21;
        qrt_put(&msg, &x, sizeof x);
    } else {
        put_int(&msg, 21);
    }
    put_int(&msg, 1);
    return dispatch(fn, 0);
}

static void test_callbacks(void)
{
    /* Callback types sorted by spelling: 0 is double (double), 1 is int (int). */
    uint64_t token = (uint64_t)(uintptr_t)twice;
    current_chan = CHAN_A;

    qpm__nsent = 0;
    check(cb_call(qpm__d_cb1, token) == -EPERM, "a token never handed out refused");

    qpm__nsent = 0;
    qpm__sent_push(token, 1, CHAN_A);
    check(cb_call(qpm__d_cb1, token) == 0, "a token called back through its type, on its channel");

    qpm__nsent = 0;
    qpm__sent_push(token, 1, CHAN_A);
    check(cb_call(qpm__d_cb0, token) == -EPERM, "a token called through another type's dispatcher refused");

    qpm__nsent = 0;
    qpm__sent_push(token, 0, CHAN_A);
    check(cb_call(qpm__d_cb1, token) == -EPERM, "a token handed out as another type refused");

    qpm__nsent = 0;
    qpm__sent_push(token, 1, CHAN_B);
    check(cb_call(qpm__d_cb1, token) == -EPERM, "a token handed out over another channel refused");

    /* A stub hands out its callback bound to its call's channel, and takes it back after. */
    qpm__nsent = 0;
    start_reply();
    put_int(&reply, 6);
    put_int(&reply, 1);
    int r = peer_each(3, twice);
    check(r == 6 && qpm__nsent == 0, "a call's tokens are withdrawn when it returns");
}

int main(void)
{
    test_replies();
    test_dispatchers();
    test_callbacks();
    return failures;
}

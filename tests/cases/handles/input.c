#include "qpm.h"
#include <dirent.h>
#include <pthread.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>

/* Handles local to a process: each crossing is refused with the reason, QPM_OPAQUE is offered
 * only where the other side would not use the handle itself. */
static FILE *kept;
QPM_COMPONENT(log) void log_to(FILE *out, const char *msg QPM_STRING) { fputs(msg, out); }
QPM_COMPONENT(log) void log_keep(FILE *out) { kept = out; }
QPM_COMPONENT(log) void log_pass(FILE *out QPM_OPAQUE) { (void)out; }
QPM_COMPONENT(log) int log_list(DIR *d) { return readdir(d) != NULL; }
QPM_COMPONENT(log) void log_lock(pthread_mutex_t *m) { pthread_mutex_lock(m); }
QPM_COMPONENT(log) int log_match(const regex_t *re, const char *s QPM_STRING) { return regexec(re, s, 0, NULL, 0); }
QPM_COMPONENT(log) void log_join(pthread_t t) { pthread_join(t, NULL); }
QPM_COMPONENT(log) int log_v(const char *fmt QPM_STRING, va_list ap) { return vprintf(fmt, ap); }

struct conn { int id; FILE *trace; pthread_mutex_t lock; char *name QPM_STRING; };
QPM_COMPONENT(log) int log_conn(const struct conn *c) { return c->id; }

static int call_v(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = log_v(fmt, ap);
    va_end(ap);
    return n;
}

int main(void)
{
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    struct conn c = {1, stderr, PTHREAD_MUTEX_INITIALIZER, "c"};
    regex_t re;
    log_to(stderr, "x");
    log_keep(stderr);
    log_pass(stderr);
    log_lock(&m);
    log_join(pthread_self());
    return log_list(NULL) + log_match(&re, "x") + call_v("%d", 1) + log_conn(&c);
}

/*
 * report.c - crash reports (qpm.crash/1), written by the main process about a domain that died.
 *
 * The dead domain left its signal, the function it was serving and raw return addresses in its
 * shared region; none of it is trusted (counts are clamped, ids checked).  Addresses are turned
 * into function, file and line by addr2line on the domain's executable, and each function into
 * its component from the table the build generated.  A program built without debug information
 * still gets a file and line for its own functions: the table also holds where the analyzer saw
 * each one defined, and a frame says which it carries ("line_source": "debug" or "definition").
 * The file is written under a temporary name and renamed, so a reader never sees half a report.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qrt_internal.h"

extern char **environ;

struct frame {
    char function[256];
    char file[PATH_MAX];
    int line;
    uint64_t address;
    const char *component;      /* from the program table, or NULL */
    const char *line_source;    /* "debug", "definition", or NULL: no line known */
};

void qrt__json_string(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A table name against the first len bytes of name, ordered as strcmp orders them. */
static int compare_name(const char *entry, const char *name, size_t len)
{
    int cmp = strncmp(entry, name, len);
    return cmp ? cmp : entry[len] != '\0';
}

/* The first and one-past-last index of `name` (its first `len` bytes) in the sorted table. */
static int symbol_range(const struct qrt_program *p, const char *name, size_t len, int *end)
{
    int lo = 0, hi = p->nsymbols;
    while (lo < hi) {       /* the first entry not below name */
        int mid = lo + (hi - lo) / 2;
        if (compare_name(p->symbols[mid], name, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int first = lo;
    while (lo < p->nsymbols && compare_name(p->symbols[lo], name, len) == 0)
        lo++;
    *end = lo;
    return first;
}

static int in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *c = list; c && *c;) {
        size_t k = strcspn(c, ",");
        if (k == n && strncmp(c, name, n) == 0)
            return 1;
        c += k + (c[k] == ',');
    }
    return 0;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/*
 * The program's own function behind a symbolized frame: its component and, when the table says
 * where it is defined, that file and line.  A compiler's clone of a function ("f.constprop.0",
 * "f.part.1", "f.cold") is the function.  Two static functions of one name are told apart by the
 * crashed domain's components, then by the file addr2line found (a file symbol survives without
 * debug information); a definition that stays ambiguous is not guessed.
 */
static void lookup_symbol(const struct qrt_program *p, int d, struct frame *fr, const char **file, int *line)
{
    *file = NULL;
    *line = 0;
    fr->component = NULL;
    if (!p->symbols || !p->symbol_components || p->nsymbols <= 0)
        return;
    const char *name = fr->function;
    size_t len = strlen(name);
    int end, first = symbol_range(p, name, len, &end);
    if (first == end) {
        const char *dot = strchr(name, '.');
        if (!dot || dot == name)
            return;
        len = (size_t)(dot - name);
        first = symbol_range(p, name, len, &end);
        if (first == end)
            return;
    }
    /* Narrow the candidates: those of the crashed domain's components, then of addr2line's file. */
    int cand[64], n = 0;
    for (int i = first; i < end && n < 64; i++)
        cand[n++] = i;
    const char *mine = p->domain_components && d >= 0 && d < p->ndomains ? p->domain_components[d] : NULL;
    if (n > 1 && mine) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (in_list(mine, p->symbol_components[cand[i]]))
                cand[m++] = cand[i];
        if (m > 0)
            n = m;
    }
    if (n > 1 && fr->file[0] && p->symbol_files) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            const char *f = p->symbol_files[cand[i]];
            if (f && strcmp(base_name(f), base_name(fr->file)) == 0)
                cand[m++] = cand[i];
        }
        if (m > 0)
            n = m;
    }
    const char *component = p->symbol_components[cand[0]];
    for (int i = 1; i < n && component; i++)
        if (strcmp(p->symbol_components[cand[i]], component) != 0)
            component = NULL;       /* ambiguous: better none than a wrong one */
    fr->component = component;
    if (!p->symbol_files || !p->symbol_lines)
        return;
    const char *f = p->symbol_files[cand[0]];
    int l = p->symbol_lines[cand[0]];
    for (int i = 1; i < n && f; i++) {
        const char *g = p->symbol_files[cand[i]];
        if (!g || strcmp(g, f) != 0 || p->symbol_lines[cand[i]] != l)
            f = NULL;
    }
    if (f && *f && l > 0) {
        *file = f;
        *line = l;
    }
}

/* Each frame's component, and a file and line for the program's own functions: from the debug
 * information when addr2line found a line, else the function's definition from the table. */
static void attribute(const struct qrt_program *p, int d, struct frame *frames, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct frame *fr = &frames[i];
        const char *file;
        int line;
        lookup_symbol(p, d, fr, &file, &line);
        if (fr->file[0] && fr->line > 0) {
            fr->line_source = "debug";
        } else if (file) {
            copy_cut(fr->file, sizeof fr->file, file);
            fr->line = line;
            fr->line_source = "definition";
        } else {
            fr->line_source = NULL;
        }
    }
}

/* Runs addr2line over the frames' executable-relative addresses; unknown frames stay "??". */
static void symbolize(const char *exe, struct frame *frames, unsigned n, uint64_t bias)
{
    for (unsigned i = 0; i < n; i++) {
        strcpy(frames[i].function, "??");
        frames[i].file[0] = '\0';
        frames[i].line = 0;
    }
    if (n == 0)
        return;
    char *argv[QRT_CRASH_FRAMES + 8];
    char addrs[QRT_CRASH_FRAMES][24];
    int k = 0;
    argv[k++] = "addr2line";
    argv[k++] = "-f";
    argv[k++] = "-e";
    argv[k++] = (char *)exe;
    for (unsigned i = 0; i < n; i++) {
        /* A return address points after its call: the call's line is one byte earlier. */
        uint64_t rel = frames[i].address >= bias ? frames[i].address - bias : 0;
        snprintf(addrs[i], sizeof addrs[i], "0x%llx", (unsigned long long)(rel ? rel - 1 : 0));
        argv[k++] = addrs[i];
    }
    argv[k] = NULL;
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0)
        return;
    /* posix_spawn, not fork: the main process may be large and have many threads.  Only the
     * pipe and /dev/null reach addr2line (everything else here is close-on-exec or not ours to
     * close, and addr2line closes nothing it did not open). */
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;
    int spawned = posix_spawn_file_actions_init(&fa) == 0;
    if (spawned) {
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        spawned = posix_spawnp(&pid, "addr2line", &fa, NULL, argv, environ) == 0;
        posix_spawn_file_actions_destroy(&fa);
    }
    close(out[1]);
    if (!spawned) {
        close(out[0]);
        return;
    }
    FILE *f = fdopen(out[0], "r");
    char fn[512], loc[PATH_MAX + 32];
    for (unsigned i = 0; f && i < n; i++) {
        if (!fgets(fn, sizeof fn, f) || !fgets(loc, sizeof loc, f))
            break;
        fn[strcspn(fn, "\n")] = '\0';
        loc[strcspn(loc, "\n")] = '\0';
        /* Names and paths too long for the report are cut, deliberately. */
        copy_cut(frames[i].function, sizeof frames[i].function, fn);
        char *colon = strrchr(loc, ':');
        if (colon && strncmp(loc, "??", 2) != 0) {
            *colon = '\0';
            frames[i].line = atoi(colon + 1);
            copy_cut(frames[i].file, sizeof frames[i].file, loc);
        }
    }
    if (f)
        fclose(f);
    else
        close(out[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

void qrt__report_dir_name(char *out, size_t cap)
{
    const char *dir = getenv("QPM_REPORT_DIR");
    snprintf(out, cap, "%s", dir && *dir ? dir : ".qpm");
}

void qrt__report_dir(char *out, size_t cap)
{
    qrt__report_dir_name(out, cap);
    /* Create it (and its parents) if need be: only when a report is written, so a run that has
     * nothing to report leaves no directory behind. */
    for (char *p = out + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(out, 0777);
            *p = '/';
        }
    }
    mkdir(out, 0777);
}

void qrt__write_crash_report(const struct qrt_program *p, int d, int status, int hung,
                             const struct qrt__crash *crash, const struct qrt__death *death,
                             long long recovery_ns, const char *outcome)
{
    /* What the dead domain left, clamped and checked. */
    int recorded = atomic_load(&((struct qrt__crash *)crash)->written) == 2;
    unsigned n = recorded ? crash->nframes : 0;
    if (n > QRT_CRASH_FRAMES)
        n = QRT_CRASH_FRAMES;
    uint32_t fn = recorded ? crash->function : UINT32_MAX;
    const char *in_flight = fn < p->nfunctions ? p->functions[fn] : NULL;

    struct frame *frames = calloc(QRT_CRASH_FRAMES, sizeof *frames);
    if (!frames)
        return;
    for (unsigned i = 0; i < n; i++)
        frames[i].address = crash->frames[i];
    char self[PATH_MAX], exe[PATH_MAX + 64];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = '\0';
    if (d == 0)
        snprintf(exe, sizeof exe, "%s", self);      /* the monolithic program itself */
    else
        snprintf(exe, sizeof exe, "%s-%s", self, p->domains[d]);
    symbolize(exe, frames, n, recorded ? crash->bias : 0);
    attribute(p, d, frames, n);

    char sig[32];
    if (hung == 3)
        snprintf(sig, sizeof sig, "nesting too deep");
    else if (hung == 2)
        snprintf(sig, sizeof sig, "bad message");
    else if (hung)
        snprintf(sig, sizeof sig, "hang");
    else if (WIFSIGNALED(status))
        snprintf(sig, sizeof sig, "SIG%s", sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status)) : "?");
    else
        snprintf(sig, sizeof sig, "exit %d", WEXITSTATUS(status));

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    char when[40], stamp[40], host[256] = "";
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    gethostname(host, sizeof host - 1);

    static _Atomic unsigned seq;
    char dir[PATH_MAX], path[PATH_MAX + 128], tmp[PATH_MAX + 160];
    qrt__report_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/crash-%s-%ld-%d-%u.json", dir, stamp, (long)getpid(), d,
             atomic_fetch_add(&seq, 1));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "%s: quarantine: cannot write crash report %s: %s\n", p->name, tmp, strerror(errno));
        free(frames);
        return;
    }
    fputs("{\n  \"schema\": \"qpm.crash/1\",\n  \"program\": ", f);
    qrt__json_string(f, p->name);
    fputs(",\n  \"plan\": ", f);
    qrt__json_string(f, p->plan);
    fputs(",\n  \"domain\": ", f);
    qrt__json_string(f, p->domains[d]);
    fputs(",\n  \"components\": [", f);
    const char *comps = p->domain_components ? p->domain_components[d] : "";
    for (const char *c = comps; c && *c;) {
        size_t k = strcspn(c, ",");
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(k < 255 ? k : 255), c);
        if (c != comps)
            fputs(", ", f);
        qrt__json_string(f, name);
        c += k + (c[k] == ',');
    }
    fputs("],\n  \"function\": ", f);
    qrt__json_string(f, in_flight);
    fputs(",\n  \"signal\": ", f);
    qrt__json_string(f, sig);
    fputs(",\n  \"time\": ", f);
    qrt__json_string(f, when);
    fputs(",\n  \"host\": ", f);
    qrt__json_string(f, host);
    fprintf(f, ",\n  \"pid\": %ld,\n  \"outcome\": ", death ? (long)death->pid : (long)getpid());
    qrt__json_string(f, outcome);
    if (death && d > 0) {
        /* Whom the fault was charged to: the call whose thread died, or every call in flight. */
        fputs(",\n  \"blame\": ", f);
        qrt__json_string(f, death->blame_all ? "every call in flight" : "culprit");
        fputs(",\n  \"in_flight\": [", f);
        unsigned k = death->nflight < QRT_CRASH_FRAMES ? death->nflight : QRT_CRASH_FRAMES;
        for (unsigned i = 0; i < k; i++) {
            uint32_t id = death->flight[i];
            fputs(i ? ", {\"function\": " : "{\"function\": ", f);
            qrt__json_string(f, id < p->nfunctions ? p->functions[id] : NULL);
            fprintf(f, ", \"calls\": %u}", death->flight_calls[i]);
        }
        fputc(']', f);
    }
    if (recovery_ns >= 0)
        fprintf(f, ",\n  \"recovery_ms\": %.3f", recovery_ns / 1e6);
    else
        fputs(",\n  \"recovery_ms\": null", f);
    if (death && d > 0)
        fprintf(f, ",\n  \"detect_ms\": %.3f", death->detect_ns / 1e6);
    fputs(",\n  \"backtrace\": [", f);
    for (unsigned i = 0; i < n; i++) {
        fprintf(f, "%s\n    {\"address\": \"0x%llx\", \"function\": ", i ? "," : "",
                (unsigned long long)frames[i].address);
        qrt__json_string(f, frames[i].function);
        fputs(", \"file\": ", f);
        qrt__json_string(f, frames[i].file[0] ? frames[i].file : NULL);
        fprintf(f, ", \"line\": %d, \"line_source\": ", frames[i].line);
        qrt__json_string(f, frames[i].line_source);
        if (frames[i].component) {
            fputs(", \"component\": ", f);
            qrt__json_string(f, frames[i].component);
        }
        fputc('}', f);
    }
    fputs(n ? "\n  ]\n}\n" : "]\n}\n", f);
    int failed = ferror(f);
    if (fclose(f) != 0 || failed || rename(tmp, path) != 0) {
        fprintf(stderr, "%s: quarantine: cannot write crash report %s\n", p->name, path);
        unlink(tmp);
    } else if (d == 0) {
        fprintf(stderr, "%s: quarantine: the program died (%s); report %s\n", p->name, sig, path);
    } else {
        fprintf(stderr, "%s: quarantine: domain %s ended (%s) in %s; %s; report %s\n", p->name,
                p->domains[d], sig, in_flight ? in_flight : death && death->blame_all && death->nflight
                ? "a thread serving no call (every call in flight blamed)" : "no call", outcome, path);
    }
    free(frames);
}

/* A server in one file: its request parser (component parse) and the rest of it (component
 * server, the file's default), a static helper both use, globals, and calls both ways: the
 * server calls the parser, the parser calls back into the server.  A plan that isolates the
 * parser runs its functions in a process of their own, the rest of the file in main's. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

QPM_FILE_COMPONENT(server);

int requests;                   /* QPM_SHARED (server.h): travels with every crossing call */
int logged;                     /* the server's own */
static const char *const verbs[] = {"get", "put", "del"};

/* Static: no stub can stand in for it, so it runs wherever its callers run (in both
 * processes of the split build).  Kept out of line to be seen in both executables. */
__attribute__((noinline)) static unsigned checksum(const char *s)
{
    unsigned h = 5381;
    while (*s)
        h = h * 33 + (unsigned char)*s++;
    return h;
}

int server_log(int verb)
{
    logged += 1 + verb;
    return logged;
}

static int ready;               /* set at every start of the parser's process */

/* QPM_INIT (server.h): runs where the parser runs, at every (re)start of its process. */
QPM_COMPONENT(parse) void parse_init(void)
{
    ready = 1;
}

QPM_COMPONENT(parse) int parse_request(const char *line, struct request *req)
{
    char verb[8] = "";
    memset(req, 0, sizeof *req);
    if (!ready)
        return -2;
    requests++;
    if (sscanf(line, "%7s %15s %d", verb, req->key, &req->value) != 3)
        return -1;
    req->verb = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(verb, verbs[i]) == 0)
            req->verb = i;
    req->sum = checksum(line);
    req->logged = server_log(req->verb);        /* back into the server, from the parser */
    req->pid = (int)getpid();
    return (int)strlen(line);
}

/* Small enough for plain gcc to inline into its callers here, and to clone or assume the
 * registers of: what the split compile of this file must not do (tests/test_placement.py). */
QPM_COMPONENT(parse) int parse_pid(void)
{
    return (int)getpid();
}

QPM_COMPONENT(parse) int parse_scaled(int mode, int x)
{
    if (mode == 3)
        return x * 3 + requests;
    return x - requests;
}

QPM_COMPONENT(parse) __attribute__((noinline)) int parse_leaf(int x)
{
    return x + 1;
}

QPM_COMPONENT(parse) int parse_crash(int how)
{
    int *volatile p = NULL;
    if (how)
        return *p;          /* a real NULL dereference */
    return 7;
}

static int server_twice(int x)
{
    return parse_scaled(3, x) + parse_scaled(3, x + 1);
}

/* b and c stay live across the call: plain gcc keeps them in registers parse_leaf does not
 * touch (IPA-RA), which a stub does. */
__attribute__((noinline)) static int server_total(int a, int b, int c)
{
    int r = parse_leaf(a);
    return r + b * c;
}

int main(int argc, char **argv)
{
    struct request req;
    if (argc > 1 && strcmp(argv[1], "crash") == 0) {
        printf("crash %d\n", parse_crash(1));     /* the plan's fault_value, once contained */
        printf("after %d\n", parse_crash(0));
    }
    int n = parse_request("put alpha 42", &req);
    printf("parsed %d verb %d key %s value %d sum %u logged %d\n", n, req.verb, req.key, req.value,
           req.sum, req.logged);
    printf("checksum %u\n", checksum("put alpha 42"));
    n = parse_request("del beta 7", &req);
    printf("parsed %d verb %d key %s value %d logged %d\n", n, req.verb, req.key, req.value, req.logged);
    printf("requests %d logged %d\n", requests, logged);
    requests += 10;
    printf("twice %d\n", server_twice(5));
    printf("total %d\n", util_add(server_total(argc, argc + 5, argc + 6), 100));
    int pid = parse_pid();
    printf("pids %s\n", pid == req.pid ? "agree" : "differ");
    fprintf(stderr, "parse runs in %s process\n", pid == (int)getpid() ? "this" : "another");
    return 0;
}

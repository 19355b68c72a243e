/* A component called by many threads at once, some of whose calls crash it on request. */
#include "qpm.h"

int pool_f(int x);                                  /* x * 3 + 1 */
int pool_slow(int x);                               /* blocks until pool_release(), then x * 3 + 1 */
int pool_wait_entered(int n);                       /* blocks until n pool_slow calls have entered */
int pool_release(void);                             /* lets every pool_slow call of this process end */
int pool_rendezvous(int n);                         /* 1 once n calls are inside at the same time */
int pool_crash(int x);                              /* dereferences NULL */
int pool_flaky(const char *marker QPM_STRING, int x);   /* crashes unless the marker file exists */
int pool_thread_crash(int x);                       /* a thread it starts dereferences NULL */
int pool_pid(void);
int pool_cpu(void);                                 /* the CPU the calling thread runs on */
int pool_kept(void);                                /* 1 when the calling thread may run on one CPU only */
QPM_RETURNS_STRING char *pool_fds(void);            /* "fd=target" lines: the process's descriptors */

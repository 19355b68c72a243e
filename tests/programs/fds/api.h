/* QPM_FD in every direction: main hands the writer sockets and pipes, the writer hands back
 * pipes and files, the writer calls main with descriptors and gets one from it, and relay's
 * calls to the writer go through main. */
#include "qpm.h"

/* writer.c: isolated in writer_iso. */
int writer_send(int sock QPM_FD, const char *text QPM_STRING);    /* writes text: its length, or -1 */
int writer_drain(int fd QPM_FD, char *out QPM_OUT(cap), int cap); /* reads fd to its end: bytes, or -1 */
QPM_FD int writer_pipe(const char *text QPM_STRING);   /* a pipe's read end, text in it, its writer closed */
QPM_FD int writer_open(const char *path QPM_STRING);   /* the file, open for reading */
QPM_FD int writer_none(void);                          /* no descriptor: -1 */
QPM_FD int writer_echo(int fd QPM_FD);                 /* its argument */
int writer_kind(int fd QPM_FD);                        /* 's' socket, 'p' pipe, 'f' file, 'n' negative */
int writer_log(const char *text QPM_STRING);           /* writes text to the descriptor app_sink gives */
int writer_show(const char *text QPM_STRING);          /* hands app_read a pipe with text in it */
int writer_open_fds(void);                             /* descriptors the writer's process holds */
int writer_crash(int fd QPM_FD, int how);              /* writes to fd, then crashes if how != 0 */

/* relay.c: isolated in relay_iso. */
int relay_send(int sock QPM_FD, const char *text QPM_STRING);
QPM_FD int relay_pipe(const char *text QPM_STRING);

/* app.c: main. */
QPM_FD int app_sink(void);                             /* the write end of main's log pipe, the caller's */
int app_read(int fd QPM_FD);                           /* reads fd to its end into main's shown text */

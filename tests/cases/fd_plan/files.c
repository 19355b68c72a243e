#include "files.h"

/* 'sock' reaches send() through io_send, which the plan puts in the same domain: an error.
 * 'fd' of file_log goes back to main's log_fd, where it means what it meant: no error here. */
int file_serve(int sock, const char *path) { return io_send(sock, path); }
int file_log(int fd) { return log_fd(fd); }

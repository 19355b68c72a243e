#include "qpm.h"

int file_serve(int sock, const char *path QPM_STRING);
int file_log(int fd);
int io_send(int fd, const char *s QPM_STRING);
int log_fd(int fd);

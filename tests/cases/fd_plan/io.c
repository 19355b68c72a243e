#include <string.h>
#include <sys/socket.h>
#include "files.h"

int io_send(int fd, const char *s) { return (int)send(fd, s, strlen(s), 0); }

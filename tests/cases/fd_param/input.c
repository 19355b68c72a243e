#include "qpm.h"
#include <fcntl.h>
#include <stddef.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

/* Descriptors reach the C library directly, through a helper of the same component, or not at all. */
QPM_COMPONENT(files) static ssize_t send_all(int fd, const char *buf, size_t len) { return send(fd, buf, len, 0); }
QPM_COMPONENT(files) int file_serve(int sock, const char *path QPM_STRING) { return (int)send_all(sock, path, 1); }
QPM_COMPONENT(files) int file_close(int fd) { return close(fd); }
QPM_COMPONENT(files) long file_copy(int out, int in, size_t n) { return (long)sendfile(out, in, NULL, n); }
QPM_COMPONENT(files) int file_marked(int fd QPM_FD) { return close(fd); }
QPM_COMPONENT(files) int file_count(int n) { return n + 1; }
QPM_COMPONENT(files) int file_close_long(long fd) { return close(fd); }

/* Returned descriptors: directly, through a local variable, through a helper. */
QPM_COMPONENT(files) int file_open(const char *path QPM_STRING)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    return fd;
}
QPM_COMPONENT(files) int file_accept(int lfd QPM_FD) { return accept(lfd, NULL, NULL); }
QPM_COMPONENT(files) static int make_socket(void) { int s; s = socket(AF_INET, SOCK_STREAM, 0); return s; }
QPM_COMPONENT(files) int file_listen(void) { return make_socket(); }
QPM_COMPONENT(files) QPM_FD int file_marked_socket(void) { return socket(AF_INET, SOCK_STREAM, 0); }
QPM_COMPONENT(files) int file_flags(int fd QPM_FD) { return fcntl(fd, F_GETFL); }

int main(void)
{
    return file_serve(1, "x") + file_close(3) + (int)file_copy(1, 0, 4) + file_marked(3) + file_count(2) +
           file_open("x") + file_accept(3) + file_listen() + file_marked_socket() + file_flags(0) + file_close_long(3);
}

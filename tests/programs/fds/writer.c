#include "api.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int writer_send(int sock, const char *text)
{
    return (int)write(sock, text, strlen(text));
}

int writer_drain(int fd, char *out, int cap)
{
    int n = 0;
    for (ssize_t r; n < cap && (r = read(fd, out + n, (size_t)(cap - n))) != 0; n += (int)r)
        if (r < 0)
            return -1;
    return n;
}

int writer_pipe(const char *text)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    ssize_t w = write(p[1], text, strlen(text));
    close(p[1]);
    if (w < 0) {
        close(p[0]);
        return -1;
    }
    return p[0];
}

int writer_open(const char *path)
{
    return open(path, O_RDONLY | O_CLOEXEC);
}

int writer_none(void)
{
    return -1;
}

int writer_echo(int fd)
{
    return fd;
}

int writer_kind(int fd)
{
    struct stat st;
    if (fd < 0)
        return 'n';
    if (fstat(fd, &st) < 0)
        return '?';
    return S_ISSOCK(st.st_mode) ? 's' : S_ISFIFO(st.st_mode) ? 'p' : S_ISREG(st.st_mode) ? 'f' : '?';
}

int writer_log(const char *text)
{
    int fd = app_sink();
    if (fd < 0)
        return -1;
    int n = (int)write(fd, text, strlen(text));
    close(fd);
    return n;
}

int writer_show(const char *text)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    ssize_t w = write(p[1], text, strlen(text));
    close(p[1]);
    int n = w < 0 ? -1 : app_read(p[0]);
    close(p[0]);
    return n;
}

int writer_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;       /* not the directory's own */
}

int writer_crash(int fd, int how)
{
    int n = (int)write(fd, "x", 1);
    if (how)
        raise(SIGSEGV);
    return n;
}

/*
 * lie_with_fds.h - how the hostile domains send main descriptors it may not want: len bytes of data
 * with n descriptors (at most SEND_FDS_MAX), over the domain's socket, without waiting.  The
 * descriptors are the sender's to lose: closed once sent.  0, or -1 when the socket is full.
 */
#ifndef LIE_WITH_FDS_H
#define LIE_WITH_FDS_H

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SEND_FDS_MAX 16

static int lie_with_fds(int sock, const void *data, size_t len, int *fds, unsigned n)
{
    n = n < SEND_FDS_MAX ? n : SEND_FDS_MAX;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * SEND_FDS_MAX)];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct iovec iov = {(void *)data, len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
                         .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
    struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(h), fds, n * sizeof(int));
    int rc = sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0 ? -1 : 0;
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
    return rc;
}

#endif

/*
 * fd_transport.c - the runtime's transport as a domain that lies about descriptors runs it: linked
 * into a real domain executable in place of runtime/transport.c, it serves calls honestly, but
 * whenever it sends main descriptors (a result, or an argument of its own call into main) it
 * tells the lie EVIL_FD names:
 *   none     the message says a descriptor comes with it; none is sent
 *   seq      the descriptor is sent under another call's number
 *   slot     ... for another channel
 *   count    two descriptors are sent where the message says one
 *   many     more descriptors than a message can carry
 *   garbage  bytes that are no tag, with the descriptor
 *   flood    the socket is filled with descriptors no message asks for; none for the message
 *   extra    descriptors for its own channel's other calls, other channels, no channel, and with
 *            a count that disagrees, then the real one (the call goes through)
 * Main must survive each: the call faults (or, for extra, succeeds), and main holds no more
 * descriptors than before.
 */
#define QRT_HOSTILE 1
#include "transport.c"

#include <fcntl.h>

#include "lie_with_fds.h"

static int hostile_post(struct qrt__chan *c, uint32_t *kind, uint32_t *fn, uint32_t *len, uint32_t *nfds)
{
    (void)c, (void)kind, (void)fn, (void)len, (void)nfds;
    return 0;
}

/* Sends len bytes with n descriptors (copies of fds[0], or of /dev/null without one), without
 * waiting: 0, or -1 when the socket is full. */
static int send_raw(int sock, const void *data, size_t len, int fd, unsigned n)
{
    int fds[16];
    for (unsigned i = 0; i < n && i < 16; i++)
        fds[i] = fd >= 0 ? dup(fd) : open("/dev/null", O_RDONLY | O_CLOEXEC);
    return lie_with_fds(sock, data, len, fds, n);
}

static int hostile_send_fds(int sock, struct fdtag *tag, int *fds)
{
    const char *mode = getenv("EVIL_FD");
    struct fdtag lie = *tag;
    if (!mode)
        return 0;
    if (!strcmp(mode, "none"))
        return 1;
    if (!strcmp(mode, "seq")) {
        tag->seq += 1;
        return 0;
    }
    if (!strcmp(mode, "slot")) {
        tag->slot += 1;
        return 0;
    }
    if (!strcmp(mode, "count")) {
        lie.nfds = 2;
        send_raw(sock, &lie, sizeof lie, fds[0], 2);
        return 1;
    }
    if (!strcmp(mode, "many")) {
        lie.nfds = 12;
        send_raw(sock, &lie, sizeof lie, fds[0], 12);
        return 1;
    }
    if (!strcmp(mode, "garbage")) {
        send_raw(sock, "junk!", 5, fds[0], 1);
        return 1;
    }
    if (!strcmp(mode, "flood")) {
        for (uint32_t i = 0; i < 100000; i++) {
            struct fdtag junk = {i % 64, i, 1};
            if (send_raw(sock, &junk, sizeof junk, -1, 1) < 0)
                break;
        }
        return 1;
    }
    if (!strcmp(mode, "extra")) {
        /* Numbers no call of another channel has (they count from 1 per channel). */
        struct fdtag junk[] = {
            {tag->slot, tag->seq + 1, 1}, {tag->slot, tag->seq - 1, 1},
            {tag->slot ^ 1, tag->seq | 0x40000000u, 1}, {tag->slot + 1, tag->seq | 0x40000000u, 1},
            {QRT_MAX_CHANNELS + 5, tag->seq, 1}, {UINT32_MAX, tag->seq, 1}, {tag->slot, tag->seq, 3},
        };
        for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
            send_raw(sock, &junk[i], sizeof junk[i], -1, 1);
        return 0;
    }
    return 0;
}

#include "qpm.h"
#include <stddef.h>

struct msg {
    size_t len;
    double scale;
    char *body QPM_COUNT(length);
    char *tail QPM_COUNT(scale);
    int *id QPM_STRING;
};

QPM_COMPONENT(bus) int bus_send(const struct msg *m) { return (int)m->len; }

int main(void) { struct msg m = {0}; return bus_send(&m); }

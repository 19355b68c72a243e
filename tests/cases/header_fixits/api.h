/* The store's interface: its prototypes carry the component, so fix-its belong here. */
#ifndef API_H
#define API_H

#include "qpm.h"
#include <stddef.h>

QPM_COMPONENT(store) int store_put(const char *buf, size_t len);
QPM_COMPONENT(store) int store_each(int n, int (*fn)(int));
QPM_COMPONENT(store) int store_total(void);

#endif

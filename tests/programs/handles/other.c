#include "api.h"

void *other_hold(void *p) { return p; }

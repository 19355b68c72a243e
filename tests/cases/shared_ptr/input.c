#include "qpm.h"

struct limits { int max_conns; int max_bytes; };

struct limits config QPM_SHARED;
const char *banner QPM_SHARED;

int main(void) { return config.max_conns + (banner != 0); }

#include "qpm.h"

int hits;
int limit QPM_SHARED;
const int version = 3;

void count_hit(void) { if (hits < limit) hits++; }

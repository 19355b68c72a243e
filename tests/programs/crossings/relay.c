#include "api.h"

int relay_triple(int x) { return 3 * x; }

#include "qpm.h"

QPM_COMPONENT(cache) int lookup(int key);

#include "qpm.h"

QPM_INIT void good_init(void) {}
QPM_INIT int bad_init(int level) { return level; }

int main(void) { return bad_init(0); }

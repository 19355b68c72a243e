#include "api.h"

QPM_COMPONENT(store) int lookup(int key) { return key * 2; }

int main(void) { return lookup(1); }

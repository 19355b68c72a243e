#include "qpm.h"

int broken(int x) { return x +; }

int main(void) { return broken(1); }

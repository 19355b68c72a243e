#include "qpm.h"

QPM_COMPONENT(sched) void every(int n, void (*fn)(int)) { for (int i = 0; i < n; i++) fn(i); }
QPM_COMPONENT(sched) void every_ok(int n, void (*fn)(int) QPM_CALLBACK) { for (int i = 0; i < n; i++) fn(i); }

static void tick(int i) { (void)i; }

int main(void) { every(3, tick); every_ok(3, tick); return 0; }

/* The isolated side of tests/programs/stats: cheap calls and slow ones. */
#include "qpm.h"

int work_add(int a, int b);
int work_sleep(int ms);

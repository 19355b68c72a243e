/* A file all of whose code runs in main's process: the split build links its one object,
 * build/obj/util.o, as every variant does. */
#include "server.h"

int util_add(int a, int b)
{
    return a + b;
}

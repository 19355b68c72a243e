#include "util.h"

unsigned store_len(unsigned n)
{
    char data[8];
    struct buf b = {data, n};
    return buf_use(&b);
}

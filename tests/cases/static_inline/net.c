#include "util.h"

int hits;
unsigned store_len(unsigned n);

int main(void)
{
    char data[4];
    struct buf b = {data, sizeof data};
    return (int)(buf_use(&b) + store_len(buf_room(&b)));
}

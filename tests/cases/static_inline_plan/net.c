#include "kv.h"

int main(void)
{
    kv_put_twice(1, 5);
    return store_get(1) == 5 && store_get(2) == 5 && kv_clamp(-1) == 0 ? 0 : 1;
}

#include "qpm.h"

extern int hits;
extern int limit;
extern const int version;
void count_hit(void);

int main(void)
{
    limit = 10;
    for (int i = 0; i < 3; i++)
        count_hit();
    return hits + version;
}

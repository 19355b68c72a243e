#include "api.h"
#include "log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int square(int x)
{
    return x * x;
}

int main(void)
{
    const char *msg = "quarantine";
    printf("put %d\n", store_put(msg, strlen(msg)));
    printf("each %d\n", store_each(4, square));
    printf("total %d\n", store_total());
    printf("line %d\n", log_line("hello"));
    char *s = log_last();
    printf("last %s\n", s ? s : "(none)");
    free(s);
    return 0;
}

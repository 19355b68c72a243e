#include "log.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char last[64];

int log_line(const char *text)
{
    snprintf(last, sizeof last, "%s", text);
    return (int)strlen(text);
}

char *log_last(void)
{
    char *s = malloc(strlen(last) + 1);
    if (s)
        strcpy(s, last);
    return s;
}

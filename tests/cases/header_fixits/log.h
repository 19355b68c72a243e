/* The log's interface: nothing annotated yet, and no qpm.h (component: the file stem of log.c). */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

int log_line(const char *text);
char *log_last(void);

#endif

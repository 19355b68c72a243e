#include <pthread.h>
#include "workers.h"

void *file_worker(void *arg) { return arg; }

int files_start(void)
{
    pthread_t a, b;
    /* file_worker is of this domain: fine; net_worker is main's. */
    return pthread_create(&a, NULL, file_worker, NULL) + pthread_create(&b, NULL, net_worker, NULL);
}

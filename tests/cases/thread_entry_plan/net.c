#include <pthread.h>
#include "workers.h"

void *net_worker(void *arg) { return arg; }

int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, file_worker, NULL) != 0)
        return 1;
    return files_start();
}

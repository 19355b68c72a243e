#include "qpm.h"
#include <pthread.h>
#include <threads.h>

/* A thread runs in the process that starts it: its entry point must be of the same component. */
QPM_COMPONENT(files) void *file_worker(void *arg) { return arg; }
QPM_COMPONENT(files) int file_thread(void *arg) { (void)arg; return 0; }
void *local_worker(void *arg) { return arg; }

QPM_COMPONENT(files) void files_start(void)
{
    pthread_t t;
    pthread_create(&t, NULL, file_worker, NULL);    /* same component: fine */
}

int main(void)
{
    pthread_t t;
    thrd_t u;
    pthread_create(&t, NULL, file_worker, NULL);
    pthread_create(&t, NULL, &file_worker, NULL);
    pthread_create(&t, NULL, local_worker, NULL);
    thrd_create(&u, file_thread, NULL);
    files_start();
    return 0;
}

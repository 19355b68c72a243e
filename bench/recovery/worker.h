#ifndef WORKER_H
#define WORKER_H
#include "qpm.h"

/* The isolated component: a call that answers, and one that crashes its process. */
QPM_COMPONENT(worker) int worker_work(int x);
QPM_COMPONENT(worker) int worker_crash(int x);

#endif

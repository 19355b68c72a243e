#include "qpm.h"

void *file_worker(void *arg QPM_OPAQUE);
void *net_worker(void *arg QPM_OPAQUE);
int files_start(void);

#include <unistd.h>
#include "files.h"

int log_fd(int fd) { return (int)write(fd, "x", 1); }

int main(void) { return file_serve(1, "index.html") + file_log(2); }

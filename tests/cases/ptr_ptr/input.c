#include "qpm.h"

QPM_COMPONENT(args) int count_args(char **argv) { int n = 0; while (argv[n]) n++; return n; }

int main(int argc, char **argv) { (void)argc; return count_args(argv); }

#include "qpm.h"

int cache_get(int key);
int store_get(int key);

int main(void) { return cache_get(1) + store_get(2); }

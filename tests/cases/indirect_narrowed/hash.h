#include <stddef.h>
#include <stdint.h>
#include "qpm.h"

typedef uint32_t (*hash_func)(const void *key QPM_IN(length), size_t length);
uint32_t jenkins_hash(const void *key QPM_IN(length), size_t length);
uint32_t murmur3_hash(const void *key QPM_IN(length), size_t length);
uint32_t crc(const void *key QPM_IN(length), size_t length);

#include "hash.h"

hash_func hash;
static hash_func checksum = crc;

static void hash_init(int kind)
{
    hash = kind ? jenkins_hash : murmur3_hash;
}

int main(int argc, char **argv)
{
    hash_init(argc > 1);
    uint32_t h = hash(argv[0], 1);
    uint32_t c = checksum(argv[0], 1);
    return (int)(h + c + crc(argv[0], 1));
}

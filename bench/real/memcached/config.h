/* config.h for memcached 1.6.18 on Linux (glibc, x86-64 or another little-endian 64-bit CPU):
 * what its ./configure --disable-extstore --disable-sasl --disable-tls --disable-proxy writes
 * there, so that the build needs no configure run.  bench/real_code.py copies it into the
 * unpacked source tree. */
#define ENDIAN_LITTLE 1
#define HAVE_ACCEPT4 1
#define HAVE_CLOCK_GETTIME 1
#define HAVE_EVENTFD 1
#define HAVE_GCC_64ATOMICS 1
#define HAVE_GCC_ATOMICS 1
#define HAVE_GETOPT_LONG 1
#define HAVE_INTTYPES_H 1
#define HAVE_LIBEVENT_NEW 1
#define HAVE_MLOCKALL 1
#define HAVE_PREAD 1
#define HAVE_PREADV 1
#define HAVE_STDBOOL_H 1
#define HAVE_STDINT_H 1
#define HAVE_STDIO_H 1
#define HAVE_STDLIB_H 1
#define HAVE_STRINGS_H 1
#define HAVE_STRING_H 1
#define HAVE_SYSCONF 1
#define HAVE_SYS_STAT_H 1
#define HAVE_SYS_TYPES_H 1
#define HAVE_UNISTD_H 1
#define HAVE__BOOL 1
#define PACKAGE "memcached"
#define PACKAGE_BUGREPORT "memcached@googlegroups.com"
#define PACKAGE_NAME "memcached"
#define PACKAGE_STRING "memcached 1.6.18"
#define PACKAGE_TARNAME "memcached"
#define PACKAGE_URL ""
#define PACKAGE_VERSION "1.6.18"
#define SIZEOF_VOID_P 8
#define STDC_HEADERS 1
#define VERSION "1.6.18"
#define _GNU_SOURCE 1

#include <stdbool.h>
#include <inttypes.h>

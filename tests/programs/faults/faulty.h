/* A component that fails in every way a component can, on request. */
#include "qpm.h"

int faulty_ok(int x);
int faulty_null(int x);
int faulty_abort(void);
int faulty_overflow(int depth);
int faulty_deadlock(void);
int faulty_flaky(const char *marker QPM_STRING);
int faulty_slow(int ms);
int faulty_inits(void);
int faulty_pid(void);
QPM_RETURNS_STRING char *faulty_big(int mib);
int faulty_chatty(int (*cb)(int) QPM_CALLBACK);
int faulty_callback(int (*cb)(int) QPM_CALLBACK, int x);
QPM_INIT void faulty_init(void);

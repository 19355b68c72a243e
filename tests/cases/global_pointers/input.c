#include "qpm.h"

/* Globals with pointers cannot travel with calls (QPM_SHARED is for pointer-free data): the
 * advice is to keep their users together. */
typedef int (*handler_fn)(int);
handler_fn handler;
const char *greeting;
int counter;

QPM_COMPONENT(app) int app_double(int x) { return 2 * x; }
QPM_COMPONENT(app) void app_setup(void) { handler = app_double; greeting = "hi"; counter = 1; }

int main(void)
{
    app_setup();
    return handler(counter) + greeting[0];
}

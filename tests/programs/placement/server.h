#ifndef SERVER_H
#define SERVER_H

#include <qpm.h>

struct request {
    int verb;
    char key[16];
    int value;
    unsigned sum;
    int logged;
    int pid;
};

extern QPM_SHARED int requests;

QPM_INIT void parse_init(void);
int parse_request(const char *line QPM_STRING, struct request *req QPM_OUT(1));
int parse_pid(void);
int parse_scaled(int mode, int x);
int parse_leaf(int x);
int parse_crash(int how);
int server_log(int verb);
int util_add(int a, int b);

#endif

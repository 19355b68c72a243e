int helper(void) { return 1; }
int main(void) { return helper(); }

int a_get(int key);
int b_get(int key);
int c_get(int key);
int d_get(int key);
int e_get(int key);

int main(void) { return a_get(1) + b_get(2) + c_get(3) + d_get(4) + e_get(5); }

int f_get(int key) { return key; }

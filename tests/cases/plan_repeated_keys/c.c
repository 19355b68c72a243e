int c_get(int key) { return key; }

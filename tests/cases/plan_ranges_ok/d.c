int d_get(int key) { return key; }

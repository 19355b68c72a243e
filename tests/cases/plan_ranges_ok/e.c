int e_get(int key) { return key; }

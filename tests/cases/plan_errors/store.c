int store_get(int key) { return key + 1; }

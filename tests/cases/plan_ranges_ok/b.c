int b_get(int key) { return key; }

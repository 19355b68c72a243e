int a_get(int key) { return key; }

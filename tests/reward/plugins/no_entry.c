/* A shared library that is not a reward plugin: no entry symbol. */
int rlpost_not_a_plugin(void) { return 42; }

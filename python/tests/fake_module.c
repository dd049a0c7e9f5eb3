/* A stand-in for mod_wsgi_telemetry.so's application-metrics C ABI
 * (docs/app-metrics.md), built by the tests with gcc: each call is logged
 * with the exact bytes, length and double it received, and answers the code
 * the test asks for. Not thread-safe; the tests call it from one thread. */
#include <stddef.h>
#include <string.h>

#define LOG_MAX 64

struct call {
    int fn; /* 1 incr, 2 set, 3 record */
    char name[128];
    size_t name_len;
    double value;
};

struct call fake_log[LOG_MAX];
int fake_calls = 0;
int fake_return = 0;
int fake_abi_version = 1;
int fake_enabled = 1;

static int logged(int fn, const char *name, size_t len, double value)
{
    if (fake_calls < LOG_MAX) {
        struct call *c = &fake_log[fake_calls];
        c->fn = fn;
        c->name_len = len;
        memcpy(c->name, name, len < sizeof c->name ? len : sizeof c->name);
        c->value = value;
    }
    fake_calls++;
    return fake_return;
}

int mwt_app_abi_version(void) { return fake_abi_version; }
int mwt_app_enabled(void) { return fake_enabled; }
int mwt_app_incr(const char *name, size_t len, double value) { return logged(1, name, len, value); }
int mwt_app_set(const char *name, size_t len, double value) { return logged(2, name, len, value); }
int mwt_app_record(const char *name, size_t len, double value) { return logged(3, name, len, value); }

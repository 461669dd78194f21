/*
 * digit-limit (name hook), in C with no libc: refuses names with more digits than the
 * operator allows, a common trait of machine-made signups ("shop83472910").
 *
 * Settings: {"max_digits": 4} (default 4).
 *
 * Build: clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
 *          -o digit_limit.wasm digit-limit.c
 */

#define EXPORT __attribute__((visibility("default")))

extern unsigned char __heap_base;
static unsigned long heap_next = 0;

/* A bump allocator: every call runs in a fresh instance, so nothing is ever freed. */
EXPORT int berth_alloc(int len) {
    if (len < 0) return 0;
    if (heap_next == 0) heap_next = (unsigned long)&__heap_base;
    unsigned long start = (heap_next + 7) & ~7UL;
    unsigned long end = start + (unsigned long)len;
    unsigned long have = __builtin_wasm_memory_size(0) * 65536UL;
    if (end > have) {
        unsigned long pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (unsigned long)-1) return 0;
    }
    heap_next = end;
    return (int)start;
}

EXPORT int berth_abi_version(void) { return 1; }

/* Finds "max_digits": N in the context JSON (inside "settings"); -1 when absent. */
static int setting(const char *ctx, int len) {
    static const char key[] = "\"max_digits\"";
    int klen = sizeof(key) - 1;
    for (int i = 0; i + klen <= len; i++) {
        int match = 1;
        for (int j = 0; j < klen; j++) {
            if (ctx[i + j] != key[j]) { match = 0; break; }
        }
        if (!match) continue;
        int k = i + klen;
        while (k < len && (ctx[k] == ' ' || ctx[k] == ':')) k++;
        int value = 0, digits = 0;
        while (k < len && ctx[k] >= '0' && ctx[k] <= '9' && digits < 6) {
            value = value * 10 + (ctx[k] - '0');
            k++;
            digits++;
        }
        return digits ? value : -1;
    }
    return -1;
}

static char *append(char *out, const char *text) {
    while (*text) *out++ = *text++;
    return out;
}

static char *append_int(char *out, int value) {
    char tmp[12];
    int n = 0;
    do { tmp[n++] = (char)('0' + value % 10); value /= 10; } while (value > 0);
    while (n > 0) *out++ = tmp[--n];
    return out;
}

static long long result(char *start, char *end) {
    return ((long long)(unsigned int)(unsigned long)start << 32) | (unsigned int)(end - start);
}

EXPORT long long berth_validate(int ctx_ptr, int ctx_len, int val_ptr, int val_len) {
    const char *name = (const char *)(unsigned long)val_ptr;
    int max = setting((const char *)(unsigned long)ctx_ptr, ctx_len);
    if (max < 0) max = 4;
    int digits = 0;
    for (int i = 0; i < val_len; i++) {
        if (name[i] >= '0' && name[i] <= '9') digits++;
    }
    char *out = (char *)(unsigned long)berth_alloc(256);
    if (!out) return 0;
    char *p = out;
    if (digits > max) {
        p = append(p, "{\"verdict\":\"deny\",\"reasons\":[{\"code\":\"too_many_digits\",\"message\":\"the name has ");
        p = append_int(p, digits);
        p = append(p, " digits; at most ");
        p = append_int(p, max);
        p = append(p, " are allowed\"}],\"rewrite\":null}");
    } else {
        p = append(p, "{\"verdict\":\"allow\",\"reasons\":[],\"rewrite\":null}");
    }
    return result(out, p);
}

EXPORT long long berth_validate_settings(int ptr, int len) {
    const char *settings = (const char *)(unsigned long)ptr;
    int has_key = 0;
    for (int i = 0; i + 12 <= len; i++) {
        const char *k = "\"max_digits\"";
        int j = 0;
        while (j < 12 && settings[i + j] == k[j]) j++;
        if (j == 12) has_key = 1;
    }
    char *out = (char *)(unsigned long)berth_alloc(128);
    if (!out) return 0;
    char *p = out;
    if (has_key && setting(settings, len) < 0) {
        p = append(p, "{\"valid\":false,\"message\":\"max_digits must be a whole number\"}");
    } else {
        p = append(p, "{\"valid\":true}");
    }
    return result(out, p);
}

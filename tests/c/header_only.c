/*
 * Compiled (not linked) by run.sh as C99, C11, C++11, C++17 and C++20 with
 * gcc and clang at -Wall -Wextra -Werror -pedantic: kadmium.h must be clean
 * in every one of them. Uses each kind of declaration once.
 */
#include <kadmium.h>

static void on_get(void *userdata, kad_result result, kad_value *value) {
    (void)userdata;
    (void)result;
    kad_value_free(value);
}

int kadmium_header_check(void);
int kadmium_header_check(void) {
    kad_get_callback cb = on_get;
    kad_value_type t = KAD_VALUE_TYPE_BYTES;
    kad_stat s = KAD_STAT_CONTACTS;
    kad_result r = KAD_FORKED;
    unsigned long n = (unsigned long)KAD_VERSION_NUMBER + KAD_CALLBACK_THREADS + KAD_ID_LEN;
    return cb != 0 && t == KAD_VALUE_TYPE_BYTES && s == KAD_STAT_CONTACTS && r == KAD_FORKED && n > 0;
}

// libcurl, loaded on first use (registry pulls): only `agent image pull` and jobs on images
// need it, and linking it would make every `agent` process map it and its TLS stack.
#include "lazy.h"
#include "include/agent_http.h"

#include <curl/curl.h>
#include <string.h>

static void *curl_handle;
static const char curl_soname[] = "libcurl.so.4";

AGENT_LAZY(curl, CURLcode, curl_global_init, (long flags), (flags))
AGENT_LAZY(curl, CURL *, curl_easy_init, (void), ())
AGENT_LAZY(curl, CURLcode, curl_easy_perform, (CURL *c), (c))
AGENT_LAZY_VOID(curl, curl_easy_cleanup, (CURL *c), (c))
AGENT_LAZY(curl, const char *, curl_easy_strerror, (CURLcode e), (e))
AGENT_LAZY(curl, struct curl_slist *, curl_slist_append, (struct curl_slist *l, const char *s), (l, s))
AGENT_LAZY_VOID(curl, curl_slist_free_all, (struct curl_slist *l), (l))

// The two variadic functions, resolved by hand and always called with one argument.
typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);
typedef CURLcode (*getinfo_fn)(CURL *, CURLINFO, ...);
static setopt_fn lazy_setopt(void) {
    static setopt_fn f;
    setopt_fn g = __atomic_load_n(&f, __ATOMIC_ACQUIRE);
    if (!g) {
        g = (setopt_fn)agent_lazy_symbol(&curl_handle, curl_soname, "curl_easy_setopt");
        __atomic_store_n(&f, g, __ATOMIC_RELEASE);
    }
    return g;
}
static getinfo_fn lazy_getinfo(void) {
    static getinfo_fn f;
    getinfo_fn g = __atomic_load_n(&f, __ATOMIC_ACQUIRE);
    if (!g) {
        g = (getinfo_fn)agent_lazy_symbol(&curl_handle, curl_soname, "curl_easy_getinfo");
        __atomic_store_n(&f, g, __ATOMIC_RELEASE);
    }
    return g;
}

struct sink_ctx { agent_http_sink fn; void *ctx; };
static size_t write_cb(char *data, size_t size, size_t n, void *userdata) {
    struct sink_ctx *s = userdata;
    return s->fn(data, size * n, s->ctx);
}

int agent_http_get(const char *url, const char *const *headers, size_t n_headers, long long resume_from,
                   long timeout_seconds, agent_http_sink body, agent_http_sink header, void *ctx,
                   struct agent_http_result *result) {
    static int initialised;
    if (!__atomic_exchange_n(&initialised, 1, __ATOMIC_ACQ_REL)) curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(result, 0, sizeof *result);
    CURL *c = curl_easy_init();
    if (!c) { result->curl_code = CURLE_FAILED_INIT; strcpy(result->error, "curl_easy_init failed"); return -1; }
    setopt_fn set = lazy_setopt();
    struct curl_slist *list = 0;
    for (size_t i = 0; i < n_headers; i++) list = curl_slist_append(list, headers[i]);
    struct sink_ctx b = { body, ctx }, h = { header, ctx };
    int https = strncmp(url, "https://", 8) == 0;
    set(c, CURLOPT_URL, url);
    set(c, CURLOPT_HTTPHEADER, list);
    set(c, CURLOPT_NOSIGNAL, 1L);
    set(c, CURLOPT_FOLLOWLOCATION, 1L);
    set(c, CURLOPT_MAXREDIRS, 5L);
    set(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
    set(c, CURLOPT_PROTOCOLS_STR, "http,https");
    set(c, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
    set(c, CURLOPT_SSL_VERIFYPEER, 1L);
    set(c, CURLOPT_SSL_VERIFYHOST, 2L);
    set(c, CURLOPT_CONNECTTIMEOUT, 30L);
    set(c, CURLOPT_TIMEOUT, timeout_seconds);
    set(c, CURLOPT_USERAGENT, "agent");
    if (resume_from > 0) set(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)resume_from);
    set(c, CURLOPT_WRITEFUNCTION, write_cb);
    set(c, CURLOPT_WRITEDATA, &b);
    if (header) {
        set(c, CURLOPT_HEADERFUNCTION, write_cb);
        set(c, CURLOPT_HEADERDATA, &h);
    }
    char err[CURL_ERROR_SIZE] = {0};
    set(c, CURLOPT_ERRORBUFFER, err);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    lazy_getinfo()(c, CURLINFO_RESPONSE_CODE, &status);
    result->status = status;
    result->curl_code = (int)rc;
    if (rc != CURLE_OK) {
        const char *m = err[0] ? err : curl_easy_strerror(rc);
        strncpy(result->error, m, sizeof result->error - 1);
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(list);
    return rc == CURLE_OK ? 0 : -1;
}

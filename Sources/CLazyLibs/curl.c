// libcurl, loaded on first use (registry pulls): only `agent image pull` and jobs on images
// need it, and linking it would make every `agent` process map it and its TLS stack.
#include "lazy.h"
#include "include/agent_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

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

// What every transfer sets: the URL and headers, redirects (at most 5, http/https only,
// never from https to http; curl drops a custom Authorization when the host changes),
// TLS verified, time limits.
static void set_common(CURL *c, setopt_fn set, const char *url, struct curl_slist *list, int follow, long timeout_seconds) {
    int https = strncmp(url, "https://", 8) == 0;
    set(c, CURLOPT_URL, url);
    set(c, CURLOPT_HTTPHEADER, list);
    set(c, CURLOPT_NOSIGNAL, 1L);
    set(c, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
    set(c, CURLOPT_MAXREDIRS, 5L);
    set(c, CURLOPT_UNRESTRICTED_AUTH, 0L);
    set(c, CURLOPT_PROTOCOLS_STR, "http,https");
    set(c, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https");
    set(c, CURLOPT_SSL_VERIFYPEER, 1L);
    set(c, CURLOPT_SSL_VERIFYHOST, 2L);
    set(c, CURLOPT_CONNECTTIMEOUT, 30L);
    set(c, CURLOPT_TIMEOUT, timeout_seconds);
    set(c, CURLOPT_USERAGENT, "agent");
}

// Runs the transfer, fills `result`, frees the handle and the header list.
static int perform(CURL *c, setopt_fn set, struct curl_slist *list, struct agent_http_result *result) {
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

struct sink_ctx { agent_http_sink fn; void *ctx; };
static size_t write_cb(char *data, size_t size, size_t n, void *userdata) {
    struct sink_ctx *s = userdata;
    return s->fn(data, size * n, s->ctx);
}

/// The start of every transfer: libcurl's global set-up once per process (one flag for GET
/// and the other methods), a fresh handle and the request's header list. NULL when no
/// handle could be made (`result` says so).
static CURL *begin(const char *const *headers, size_t n_headers, struct curl_slist **list,
                   struct agent_http_result *result) {
    static int initialised;
    if (!__atomic_exchange_n(&initialised, 1, __ATOMIC_ACQ_REL)) curl_global_init(CURL_GLOBAL_DEFAULT);
    memset(result, 0, sizeof *result);
    CURL *c = curl_easy_init();
    if (!c) { result->curl_code = CURLE_FAILED_INIT; strcpy(result->error, "curl_easy_init failed"); return 0; }
    for (size_t k = 0; k < n_headers; k++) *list = curl_slist_append(*list, headers[k]);
    return c;
}

int agent_http_get(const char *url, const char *const *headers, size_t n_headers, long long resume_from,
                   long timeout_seconds, agent_http_sink body, agent_http_sink header, void *ctx,
                   struct agent_http_result *result) {
    struct curl_slist *list = 0;
    CURL *c = begin(headers, n_headers, &list, result);
    if (!c) return -1;
    setopt_fn set = lazy_setopt();
    struct sink_ctx b = { body, ctx }, h = { header, ctx };
    set_common(c, set, url, list, 1, timeout_seconds);
    if (resume_from > 0) set(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)resume_from);
    set(c, CURLOPT_WRITEFUNCTION, write_cb);
    set(c, CURLOPT_WRITEDATA, &b);
    if (header) {
        set(c, CURLOPT_HEADERFUNCTION, write_cb);
        set(c, CURLOPT_HEADERDATA, &h);
    }
    return perform(c, set, list, result);
}

struct body_ctx { const struct agent_http_body *b; long long sent; };
static size_t read_cb(char *buf, size_t size, size_t n, void *userdata) {
    struct body_ctx *r = userdata;
    long long left = r->b->length - r->sent;
    size_t want = size * n;
    if (left <= 0) return 0;
    if ((long long)want > left) want = (size_t)left;
    if (r->b->fd < 0) {
        memcpy(buf, r->b->data + r->sent, want);
        r->sent += (long long)want;
        return want;
    }
    ssize_t got;
    do { got = pread(r->b->fd, buf, want, (off_t)(r->b->offset + r->sent)); } while (got < 0 && errno == EINTR);
    // A short file (it shrank under us) ends the body early: the registry sees a size
    // or digest mismatch, never bytes from elsewhere.
    if (got <= 0) return CURL_READFUNC_ABORT;
    r->sent += got;
    return (size_t)got;
}

int agent_http_request(const char *method, const char *url, const char *const *headers, size_t n_headers,
                       const struct agent_http_body *body, int follow_redirects, long timeout_seconds,
                       agent_http_sink sink, agent_http_sink header, void *ctx, struct agent_http_result *result) {
    struct curl_slist *list = 0;
    CURL *c = begin(headers, n_headers, &list, result);
    if (!c) return -1;
    setopt_fn set = lazy_setopt();
    list = curl_slist_append(list, "Expect:");
    struct sink_ctx b = { sink, ctx }, h = { header, ctx };
    struct body_ctx rb = { body, 0 };
    set_common(c, set, url, list, follow_redirects, timeout_seconds);
    if (strcmp(method, "HEAD") == 0) {
        set(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        if (body) {
            set(c, CURLOPT_UPLOAD, 1L);
            set(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body->length);
            set(c, CURLOPT_READFUNCTION, read_cb);
            set(c, CURLOPT_READDATA, &rb);
        } else if (strcmp(method, "POST") == 0) {
            set(c, CURLOPT_POST, 1L);
            set(c, CURLOPT_POSTFIELDS, "");
            set(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
        set(c, CURLOPT_CUSTOMREQUEST, method);
    }
    set(c, CURLOPT_WRITEFUNCTION, write_cb);
    set(c, CURLOPT_WRITEDATA, &b);
    if (header) {
        set(c, CURLOPT_HEADERFUNCTION, write_cb);
        set(c, CURLOPT_HEADERDATA, &h);
    }
    return perform(c, set, list, result);
}

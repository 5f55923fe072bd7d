// One HTTP GET through libcurl, loaded on first use (curl.c). A small C API rather than
// trampolines called from Swift: curl_easy_setopt and curl_easy_getinfo are variadic,
// which Swift cannot call.
#ifndef AGENT_HTTP_H
#define AGENT_HTTP_H

#include <stddef.h>

/// Receives body or header bytes; returning anything but `n` aborts the transfer
/// (a size cap, a digest already known to be wrong, a failed write).
typedef size_t (*agent_http_sink)(const char *data, size_t n, void *ctx);

struct agent_http_result {
    long status;           /* HTTP status of the last response (after redirects) */
    int curl_code;         /* CURLcode, 0 on success */
    char error[256];       /* curl's message when curl_code != 0 */
};

/// GET `url` with the extra request `headers` ("Name: value"). Redirects are followed (at
/// most 5, http/https only, never from https to http); curl drops a custom Authorization
/// header when the host changes. TLS is verified against the system CAs. `resume_from` > 0
/// asks for a Range. Returns 0 when a response was received (see `status`), else -1.
int agent_http_get(const char *url, const char *const *headers, size_t n_headers, long long resume_from,
                   long timeout_seconds, agent_http_sink body, agent_http_sink header, void *ctx,
                   struct agent_http_result *result);

/// The body of a request: `length` bytes from descriptor `fd` at `offset` (read with
/// pread, so the caller's file position is untouched), or from `data` when `fd` < 0.
struct agent_http_body {
    int fd;
    long long offset;
    long long length;
    const char *data;
};

/// Any method (`HEAD`, `GET`, `POST`, `PUT`, `PATCH`, `DELETE`) with an optional body (sent
/// with Content-Length, no `Expect: 100-continue`). Redirects are followed only when
/// `follow_redirects` (uploads are never re-sent elsewhere). Otherwise as agent_http_get.
int agent_http_request(const char *method, const char *url, const char *const *headers, size_t n_headers,
                       const struct agent_http_body *body, int follow_redirects, long timeout_seconds,
                       agent_http_sink sink, agent_http_sink header, void *ctx, struct agent_http_result *result);

#endif

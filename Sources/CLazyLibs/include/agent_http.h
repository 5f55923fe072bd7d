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

#endif

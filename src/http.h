/*
 * http.h
 *		One HTTP request with libcurl, bounded in size and time, interruptible.
 *
 * No transaction may be open around http_fetch.  libcurl's callbacks never
 * palloc or raise: they fill malloc'd buffers with hard caps, copied into
 * the current memory context after curl returns.
 */
#ifndef NANGO_HTTP_H
#define NANGO_HTTP_H

#include "postgres.h"
#include "nodes/pg_list.h"

typedef struct HttpResponse
{
	long		status;			/* HTTP status, 0 when no response */
	char	   *content_type;	/* may be NULL */
	char	   *link;			/* all Link header values joined by ", " */
	char	   *body;			/* NUL-terminated, may contain no NUL */
	size_t		body_len;
	char	   *effective_url;	/* after redirects, base for relative URLs */
} HttpResponse;

/*
 * Sends one request.  url must be absolute (the caller adds query params).
 * headers is a List of NameValue.  body may be NULL.  On a transport fault
 * (connect, timeout, size cap, too many redirects) returns false with a
 * message in *error that names no secret; an HTTP error status is not a
 * fault here: the caller reads resp->status.  CHECK_FOR_INTERRUPTS runs
 * after curl returns, so a cancel or SIGTERM ends the request at once.
 */
extern bool http_fetch(const char *method, const char *url, List *headers,
					   const char *body, HttpResponse *resp, char **error);

/*
 * url without its query, fragment and user info, which may hold secrets:
 * the form of a URL that logs and error messages show.  palloc'd.
 */
extern char *http_url_for_log(const char *url);

/* "scheme://host:port" of an absolute URL, or NULL. */
extern char *http_url_origin(const char *url);

/* Called once from _PG_init. */
extern void http_global_init(void);

#endif							/* NANGO_HTTP_H */

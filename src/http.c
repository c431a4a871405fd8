/*
 * http.c
 *		One HTTP request with libcurl: bounded in size and time, limited to
 *		http and https, interruptible by a cancel or a shutdown.
 *
 * libcurl's callbacks run inside curl_easy_perform, where an ERROR must not
 * unwind: they only fill malloc'd buffers, refuse to grow them past a cap by
 * returning an error code to libcurl, and check Postgres's interrupt flags.
 * Everything is copied into the caller's memory context after curl returns,
 * and the malloc'd buffers are freed on every path.
 *
 * One easy handle is kept for the life of the process and reset before each
 * request, so that the connections and DNS answers it caches serve the next
 * page of a run.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "utils/timestamp.h"

#include "http.h"
#include "nango.h"
#include "sync_config.h"

#define HTTP_USER_AGENT			"nango/0.1"
#define HTTP_CONNECT_TIMEOUT	10	/* seconds, at most nango.http_timeout */
#define HTTP_LOW_SPEED_TIME		30	/* seconds below 1 byte/s ends a request */
#define HTTP_INITIAL_BUFFER		(16 * 1024)

/* A growing malloc'd buffer that never exceeds its cap. */
typedef struct HttpBuffer
{
	char	   *data;
	size_t		len;
	size_t		size;
} HttpBuffer;

/* What the callbacks of one transfer share; malloc'd memory only. */
typedef struct HttpTransfer
{
	HttpBuffer	body;
	size_t		body_cap;
	bool		body_too_large;
	HttpBuffer	link;			/* Link values of the last response */
	size_t		header_bytes;	/* all header lines of all responses */
	bool		headers_too_large;
	bool		out_of_memory;
} HttpTransfer;

static CURL *http_handle = NULL;
static bool http_initialised = false;

static bool http_buffer_append(HttpBuffer *buf, const char *data, size_t len,
							   size_t cap);
static size_t http_write_body(char *data, size_t size, size_t nmemb,
							  void *arg);
static size_t http_write_header(char *data, size_t size, size_t nitems,
								void *arg);
static int	http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
						  curl_off_t ultotal, curl_off_t ulnow);
static CURLcode http_set_options(CURL *h, const char *method, long timeout_ms,
								 const char *url, struct curl_slist *headers,
								 const char *body, HttpTransfer *xfer,
								 char *errbuf);
static void http_add_headers(struct curl_slist *volatile *list,
							 List *headers, bool json_body);
static char *http_fault(CURLcode rc, const HttpTransfer *xfer,
						const char *errbuf);

/*
 * Initialises libcurl once per process tree; libcurl asks for this before
 * any thread exists, so _PG_init calls it in the postmaster.
 */
void
http_global_init(void)
{
	if (http_initialised)
		return;
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		elog(ERROR, "could not initialise libcurl");
	http_initialised = true;
}

/*
 * Appends len bytes to buf, growing it by doubling, keeping room for a
 * final NUL.  False when the result would exceed cap bytes or malloc fails.
 */
static bool
http_buffer_append(HttpBuffer *buf, const char *data, size_t len, size_t cap)
{
	if (len > cap || buf->len > cap - len)
		return false;

	if (buf->len + len + 1 > buf->size)
	{
		size_t		size = Max(buf->size, HTTP_INITIAL_BUFFER);
		char	   *grown;

		while (size < buf->len + len + 1)
			size *= 2;
		grown = realloc(buf->data, size);
		if (grown == NULL)
			return false;
		buf->data = grown;
		buf->size = size;
	}
	memcpy(buf->data + buf->len, data, len);
	buf->len += len;
	buf->data[buf->len] = '\0';
	return true;
}

/*
 * libcurl's write callback: stores the (decoded) body up to the cap of
 * nango.max_response_size.  Returning less than it was given makes libcurl
 * end the transfer with CURLE_WRITE_ERROR; the flags say why.
 */
static size_t
http_write_body(char *data, size_t size, size_t nmemb, void *arg)
{
	HttpTransfer *xfer = (HttpTransfer *) arg;
	size_t		len = size * nmemb;

	if (xfer->body.len + len > xfer->body_cap)
	{
		xfer->body_too_large = true;
		return 0;
	}
	if (!http_buffer_append(&xfer->body, data, len, xfer->body_cap))
	{
		xfer->out_of_memory = true;
		return 0;
	}
	return len;
}

/*
 * libcurl's header callback, called once a header line, for every response
 * of a redirect chain.  Keeps the Link values of the last response only,
 * and caps the bytes of all header lines.
 */
static size_t
http_write_header(char *data, size_t size, size_t nitems, void *arg)
{
	HttpTransfer *xfer = (HttpTransfer *) arg;
	size_t		len = size * nitems;
	const char *value;
	const char *end;

	xfer->header_bytes += len;
	if (xfer->header_bytes > NANGO_MAX_HEADER_BYTES)
	{
		xfer->headers_too_large = true;
		return 0;
	}

	/* A status line starts the headers of another response. */
	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		xfer->link.len = 0;
		return len;
	}
	if (len < 5 || pg_strncasecmp(data, "link:", 5) != 0)
		return len;

	value = data + 5;
	end = data + len;
	while (value < end && (*value == ' ' || *value == '\t'))
		value++;
	while (end > value && (end[-1] == '\r' || end[-1] == '\n' ||
						   end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end == value)
		return len;

	if ((xfer->link.len > 0 &&
		 !http_buffer_append(&xfer->link, ", ", 2, NANGO_MAX_HEADER_BYTES)) ||
		!http_buffer_append(&xfer->link, value, end - value,
							NANGO_MAX_HEADER_BYTES))
	{
		xfer->out_of_memory = true;
		return 0;
	}
	return len;
}

/*
 * libcurl's progress callback, called at least once a second: a non-zero
 * return aborts the transfer when a cancel or a shutdown is pending, and
 * CHECK_FOR_INTERRUPTS after curl returns acts on it.
 */
static int
http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			  curl_off_t ultotal, curl_off_t ulnow)
{
	if (InterruptPending && (QueryCancelPending || ProcDiePending))
		return 1;
	return 0;
}

/*
 * Sets every option of one request on a freshly reset handle.
 */
static CURLcode
http_set_options(CURL *h, const char *method, long timeout_ms,
				 const char *url, struct curl_slist *headers,
				 const char *body, HttpTransfer *xfer, char *errbuf)
{
	CURLcode	rc;
	long		timeout = nango_http_timeout;

#define HTTP_SETOPT(option, value) \
	do { \
		if ((rc = curl_easy_setopt(h, option, value)) != CURLE_OK) \
			return rc; \
	} while (0)

	HTTP_SETOPT(CURLOPT_URL, url);
	HTTP_SETOPT(CURLOPT_ERRORBUFFER, errbuf);
#if LIBCURL_VERSION_NUM >= 0x075500
	HTTP_SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	HTTP_SETOPT(CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
	HTTP_SETOPT(CURLOPT_REDIR_PROTOCOLS,
				(long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	/* Redirects are followed by http_fetch, which checks their host. */
	HTTP_SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SETOPT(CURLOPT_CONNECTTIMEOUT, Min(timeout, HTTP_CONNECT_TIMEOUT));
	HTTP_SETOPT(CURLOPT_TIMEOUT_MS, timeout_ms);
	HTTP_SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
	HTTP_SETOPT(CURLOPT_LOW_SPEED_TIME, Min(timeout, HTTP_LOW_SPEED_TIME));
	HTTP_SETOPT(CURLOPT_NOSIGNAL, 1L);
	HTTP_SETOPT(CURLOPT_ACCEPT_ENCODING, "");
	HTTP_SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) xfer->body_cap);
	HTTP_SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	HTTP_SETOPT(CURLOPT_USERAGENT, HTTP_USER_AGENT);
	HTTP_SETOPT(CURLOPT_HTTPHEADER, headers);

	HTTP_SETOPT(CURLOPT_WRITEFUNCTION, http_write_body);
	HTTP_SETOPT(CURLOPT_WRITEDATA, xfer);
	HTTP_SETOPT(CURLOPT_HEADERFUNCTION, http_write_header);
	HTTP_SETOPT(CURLOPT_HEADERDATA, xfer);
	HTTP_SETOPT(CURLOPT_XFERINFOFUNCTION, http_progress);
	HTTP_SETOPT(CURLOPT_NOPROGRESS, 0L);

	/* GET sends no body; the others send the JSON body, maybe empty. */
	if (strcmp(method, "GET") == 0)
		HTTP_SETOPT(CURLOPT_HTTPGET, 1L);
	else
	{
		if (strcmp(method, "POST") == 0)
			HTTP_SETOPT(CURLOPT_POST, 1L);
		else
			HTTP_SETOPT(CURLOPT_CUSTOMREQUEST, method);
		HTTP_SETOPT(CURLOPT_POSTFIELDSIZE_LARGE,
					(curl_off_t) (body ? strlen(body) : 0));
		HTTP_SETOPT(CURLOPT_POSTFIELDS, body ? body : "");
	}

#undef HTTP_SETOPT
	return CURLE_OK;
}

/*
 * Builds the header list: the sync's headers, then Accept and Content-Type
 * for JSON unless the sync sets them itself.  Appends into *list so that
 * the caller frees whatever was built even if this raises.
 */
static void
http_add_headers(struct curl_slist *volatile *list, List *headers,
				 bool json_body)
{
	ListCell   *lc;
	bool		has_accept = false;
	bool		has_content_type = false;
	const char *fixed[3];	/* the most added below */
	int			nfixed = 0;

	foreach(lc, headers)
	{
		NameValue  *nv = (NameValue *) lfirst(lc);
		char	   *line;
		struct curl_slist *grown;

		if (pg_strcasecmp(nv->name, "Accept") == 0)
			has_accept = true;
		if (pg_strcasecmp(nv->name, "Content-Type") == 0)
			has_content_type = true;

		/* "Name;" is curl's way of sending a header with an empty value. */
		if (nv->value[0] == '\0')
			line = psprintf("%s;", nv->name);
		else
			line = psprintf("%s: %s", nv->name, nv->value);
		grown = curl_slist_append(*list, line);
		pfree(line);
		if (grown == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		*list = grown;
	}

	if (!has_accept)
		fixed[nfixed++] = "Accept: application/json";
	if (!has_content_type && json_body)
		fixed[nfixed++] = "Content-Type: application/json";
	else if (!has_content_type)
		fixed[nfixed++] = "Content-Type:";	/* not curl's form type */
	/* Without this libcurl may wait a second for "100 Continue". */
	fixed[nfixed++] = "Expect:";

	for (int i = 0; i < nfixed; i++)
	{
		struct curl_slist *grown = curl_slist_append(*list, fixed[i]);

		if (grown == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		*list = grown;
	}
}

/*
 * The reason a transfer failed, in words that name no secret: our own caps
 * first, then libcurl's message (it names hosts and ports, never headers).
 */
static char *
http_fault(CURLcode rc, const HttpTransfer *xfer, const char *errbuf)
{
	if (rc == CURLE_ABORTED_BY_CALLBACK)
		return pstrdup("the request was cancelled");
	if (xfer->body_too_large || rc == CURLE_FILESIZE_EXCEEDED)
		return psprintf("the response is larger than nango.max_response_size (%d kB)",
						nango_max_response_size);
	if (xfer->headers_too_large)
		return psprintf("the response headers are larger than %d bytes",
						NANGO_MAX_HEADER_BYTES);
	if (xfer->out_of_memory)
		return pstrdup("out of memory while reading the response");
	if (rc == CURLE_OUT_OF_MEMORY)
		return pstrdup("libcurl could not read the response: a header line "
					   "longer than it accepts (100 kB), or out of memory");
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return psprintf("timed out (nango.http_timeout is %d s): %s",
						nango_http_timeout,
						errbuf[0] ? errbuf : curl_easy_strerror(rc));
	return pstrdup(errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

/*
 * Sends one request and follows no redirect: *location is set to the
 * absolute target of a redirect response, else NULL.  The request may take
 * timeout_ms.  The request and its outcome are logged at DEBUG1 with the
 * URL stripped of its query.  While curl waits, pg_stat_activity shows the
 * worker waiting on wait event "Extension".
 */
static bool
http_fetch_once(const char *method, const char *url, List *headers,
				const char *body, long timeout_ms, HttpResponse *resp,
				char **error, char **location)
{
	HttpTransfer *xfer;
	struct curl_slist *volatile header_list = NULL;
	char		errbuf[CURL_ERROR_SIZE];
	volatile CURLcode rc = CURLE_OK;
	char	   *log_url = http_url_for_log(url);
	bool		json_body = (strcmp(method, "GET") != 0 && body != NULL);

	memset(resp, 0, sizeof(HttpResponse));
	*error = NULL;
	*location = NULL;
	errbuf[0] = '\0';
	xfer = palloc0(sizeof(HttpTransfer));
	xfer->body_cap = (size_t) nango_max_response_size * 1024;

	if (http_handle == NULL)
	{
		http_handle = curl_easy_init();
		if (http_handle == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
	}
	curl_easy_reset(http_handle);

	PG_TRY();
	{
		http_add_headers(&header_list, headers, json_body);
		rc = http_set_options(http_handle, method, timeout_ms, url,
							  header_list, body, xfer, errbuf);
		if (rc == CURLE_OK)
		{
			pgstat_report_wait_start(PG_WAIT_EXTENSION);
			rc = curl_easy_perform(http_handle);
			pgstat_report_wait_end();
		}

		if (rc == CURLE_OK)
		{
			char	   *content_type = NULL;
			char	   *effective_url = NULL;
			char	   *redirect_url = NULL;

			curl_easy_getinfo(http_handle, CURLINFO_RESPONSE_CODE,
							  &resp->status);
			curl_easy_getinfo(http_handle, CURLINFO_REDIRECT_URL,
							  &redirect_url);
			if (redirect_url != NULL && resp->status >= 300 &&
				resp->status < 400)
				*location = pstrdup(redirect_url);
			curl_easy_getinfo(http_handle, CURLINFO_CONTENT_TYPE,
							  &content_type);
			curl_easy_getinfo(http_handle, CURLINFO_EFFECTIVE_URL,
							  &effective_url);

			resp->content_type = content_type ? pstrdup(content_type) : NULL;
			resp->effective_url = pstrdup(effective_url ? effective_url : url);
			resp->link = xfer->link.len > 0 ?
				pnstrdup(xfer->link.data, xfer->link.len) : NULL;
			resp->body_len = xfer->body.len;
			resp->body = palloc(xfer->body.len + 1);
			if (xfer->body.len > 0)
				memcpy(resp->body, xfer->body.data, xfer->body.len);
			resp->body[xfer->body.len] = '\0';
		}
		else
			*error = psprintf("%s %s failed: %s", method, log_url,
							  http_fault(rc, xfer, errbuf));
	}
	PG_FINALLY();
	{
		pgstat_report_wait_end();
		curl_slist_free_all(header_list);
		free(xfer->body.data);
		free(xfer->link.data);
		/* The handle must not point at memory that is going away. */
		curl_easy_reset(http_handle);
	}
	PG_END_TRY();

	/* A cancel or a shutdown that aborted the transfer ends it here. */
	CHECK_FOR_INTERRUPTS();

	if (rc != CURLE_OK)
	{
		elog(DEBUG1, "nango: %s", *error);
		return false;
	}
	elog(DEBUG1, "nango: %s %s: status %ld, %zu bytes",
		 method, log_url, resp->status, resp->body_len);
	return true;
}

/*
 * Sends one request, following at most NANGO_MAX_REDIRECTS redirects and
 * only to the scheme, host and port of url: a sync's headers, credentials
 * among them, never go to another host.  The request and its redirects
 * together take at most nango.http_timeout.  See http.h for the contract.
 */
bool
http_fetch(const char *method, const char *url, List *headers,
		   const char *body, HttpResponse *resp, char **error)
{
	char	   *origin = http_url_origin(url);
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   nango_http_timeout * 1000L);

	for (int redirects = 0;; redirects++)
	{
		char	   *location;
		char	   *target_origin;
		long		left_ms;

		left_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
												  deadline);
		if (left_ms <= 0)
		{
			*error = psprintf("%s %s failed: timed out after redirects "
							  "(nango.http_timeout is %d s)", method,
							  http_url_for_log(url), nango_http_timeout);
			return false;
		}
		if (!http_fetch_once(method, url, headers, body, left_ms, resp,
							 error, &location))
			return false;
		if (location == NULL)
			return true;

		if (redirects == NANGO_MAX_REDIRECTS)
		{
			*error = psprintf("%s %s failed: more than %d redirects", method,
							  http_url_for_log(url), NANGO_MAX_REDIRECTS);
			return false;
		}
		target_origin = http_url_origin(location);
		if (origin == NULL || target_origin == NULL ||
			pg_strcasecmp(origin, target_origin) != 0)
		{
			*error = psprintf("%s %s failed: it redirects to another host (%s)",
							  method, http_url_for_log(url),
							  target_origin ? target_origin : "?");
			return false;
		}

		/* As browsers do: 303, and 301 or 302 after a POST, become GET. */
		if (resp->status == 303 ||
			((resp->status == 301 || resp->status == 302) &&
			 strcmp(method, "POST") == 0))
		{
			method = "GET";
			body = NULL;
		}
		url = location;
	}
}

/*
 * The scheme, host and port of an absolute URL, as "https://host:443";
 * NULL when it does not parse.
 */
char *
http_url_origin(const char *url)
{
	CURLU	   *handle = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *port = NULL;
	char	   *result = NULL;

	if (handle == NULL)
		return NULL;
	if (curl_url_set(handle, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(handle, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		curl_url_get(handle, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		curl_url_get(handle, CURLUPART_PORT, &port,
					 CURLU_DEFAULT_PORT) == CURLUE_OK)
		result = psprintf("%s://%s:%s", scheme, host, port);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(handle);
	return result;
}

/*
 * url without query, fragment and user info; see http.h.  A URL that curl
 * cannot parse is not shown at all.
 */
char *
http_url_for_log(const char *url)
{
	CURLU	   *handle;
	char	   *clean = NULL;
	char	   *volatile result = NULL;

	if (url == NULL)
		return pstrdup("(no URL)");

	handle = curl_url();
	if (handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	if (curl_url_set(handle, CURLUPART_URL, url,
					 CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
		curl_url_set(handle, CURLUPART_QUERY, NULL, 0) == CURLUE_OK &&
		curl_url_set(handle, CURLUPART_FRAGMENT, NULL, 0) == CURLUE_OK &&
		curl_url_set(handle, CURLUPART_USER, NULL, 0) == CURLUE_OK &&
		curl_url_set(handle, CURLUPART_PASSWORD, NULL, 0) == CURLUE_OK &&
		curl_url_set(handle, CURLUPART_OPTIONS, NULL, 0) == CURLUE_OK)
		(void) curl_url_get(handle, CURLUPART_URL, &clean, 0);

	PG_TRY();
	{
		result = pstrdup(clean ? clean : "(invalid URL)");
	}
	PG_FINALLY();
	{
		curl_free(clean);
		curl_url_cleanup(handle);
	}
	PG_END_TRY();
	return result;
}

/*
 * page.c
 *		One page of a run: the request that fetches it, and what its
 *		response says about the records and the next page.
 *
 * URLs are built and resolved with libcurl's URL API.  jansson reads the
 * structure of a response (where the records are, the paging token, the
 * has_more flag, the total); the records themselves are read later by
 * Postgres from the raw text of the page, so numbers keep every digit.
 * Every jansson tree is released on every path, errors included.
 */
#include "postgres.h"

#include "common/int.h"

#include <math.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/hashfn.h"
#include "common/shortest_dec.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "nango.h"
#include "page.h"

/*
 * Memory jansson may use to read a body of len bytes: ample for any JSON
 * of that size, and never above 1 GB, whatever nango.max_response_size.
 */
#define PAGE_JSON_MAX_BUDGET	((size_t) 1024 * 1024 * 1024)
#define PAGE_JSON_BUDGET(len) \
	Min((size_t) (len) * 32 + (size_t) 64 * 1024 * 1024, PAGE_JSON_MAX_BUDGET)

/*
 * jsonb's SQL functions, declared here because utils/fmgrprotos.h also
 * declares SQL functions named json_object and json_typeof, which clash
 * with jansson's.
 */
extern Datum jsonb_in(PG_FUNCTION_ARGS);
extern Datum jsonb_out(PG_FUNCTION_ARGS);
extern Datum jsonb_concat(PG_FUNCTION_ARGS);

#define PAGE_EXCERPT_BYTES	200		/* of a body, in an error message */
#define PAGE_MAX_KEYS_SHOWN	10		/* top-level keys named in an error */

/* Tokens and next URLs already followed in this run, as 64-bit hashes. */
struct PageSeen
{
	HTAB	   *hash;
};

/* A parsed response body. */
typedef struct PageBody
{
	json_t	   *root;
	bool		ints_as_reals;	/* integers too big for int64 were present */
	const char *log_url;		/* the response's URL without its query */
} PageBody;

static char *page_build_url(const char *base, List *query_params,
							List *paging_params);
static char *page_body_with_token(const char *body, const char *param,
								  const char *token);
static NameValue *page_param(const char *name, const char *value);
static char *page_excerpt(const char *data, size_t len);
static void page_check_status(const HttpResponse *resp, const char *log_url);
static json_t *page_parse_body(const HttpResponse *resp, PageBody *body);
static json_t *page_follow(json_t *value, List *segments);
static json_t *page_at(json_t *value, const char *path);
static json_t *page_find_records(const SyncConfig *sync, PageBody *body,
								 PageResult *result);
static List *page_record_keys(json_t *records, bool single_record);
static void page_next_state(const SyncConfig *sync, const PagingState *state,
							const HttpResponse *resp, PageBody *body,
							json_t *records, PageSeen *seen,
							PageResult *result);
static char *page_token_text(json_t *value, const PageBody *body,
							 const char *what);
static bool page_has_more(json_t *value, const PageBody *body);
static int64 page_total(json_t *value, const PageBody *body);
static char *page_link_next(const char *header, const char *log_url);
static char *page_resolve_url(const char *base, const char *ref,
							   const char *origin_url, const char *log_url);
static bool page_seen_add(PageSeen *seen, const char *text);

/*
 * The request for the page that state points at.  The first page is the
 * sync's URL with its query_params and, for offset, page and cursor paging,
 * the paging parameters.  After the first page, link_header and next_url
 * paging follow the next URL exactly as the API gave it: it already carries
 * whatever query the API wants.
 */
void
page_build_request(const SyncConfig *sync, const PagingState *state,
				   PageRequest *req)
{
	const PagingConfig *paging = &sync->paging;
	List	   *params = NIL;

	req->body = sync->body ? pstrdup(sync->body) : NULL;

	/*
	 * A next URL comes from the API, with its own query; the sync's
	 * query_params still go with it (taking the place of a parameter of the
	 * same name), as they go with every request.
	 */
	if ((paging->type == PAGING_LINK_HEADER ||
		 paging->type == PAGING_NEXT_URL) && state->next_url != NULL)
	{
		req->url = sync->query_params == NIL ? pstrdup(state->next_url) :
			page_build_url(state->next_url, NIL, sync->query_params);
		return;
	}

	switch (paging->type)
	{
		case PAGING_NONE:
		case PAGING_LINK_HEADER:
		case PAGING_NEXT_URL:
			break;
		case PAGING_CURSOR:
			if (state->token == NULL)
				break;
			if (paging->in_body)
				req->body = page_body_with_token(sync->body, paging->param,
												 state->token);
			else
				params = lappend(params,
								 page_param(paging->param, state->token));
			break;
		case PAGING_RECORD_CURSOR:
			if (state->token != NULL)
				params = lappend(params,
								 page_param(paging->param, state->token));
			break;
		case PAGING_OFFSET:
			params = lappend(params,
							 page_param(paging->offset_param,
										psprintf(INT64_FORMAT, state->offset)));
			params = lappend(params,
							 page_param(paging->limit_param,
										psprintf(INT64_FORMAT, paging->limit)));
			break;
		case PAGING_PAGE:
			params = lappend(params,
							 page_param(paging->page_param,
										psprintf(INT64_FORMAT, state->page)));
			if (paging->size_param != NULL)
				params = lappend(params,
								 page_param(paging->size_param,
											psprintf(INT64_FORMAT,
													 paging->size)));
			break;
	}

	req->url = page_build_url(sync->url, sync->query_params, params);
}

static NameValue *
page_param(const char *name, const char *value)
{
	NameValue  *nv = palloc(sizeof(NameValue));

	nv->name = pstrdup(name);
	nv->value = pstrdup(value);
	return nv;
}

/*
 * "name=value" with both percent-encoded by libcurl, so that '=', '&' or
 * '+' in either reach the API as they were given.
 */
static char *
page_query_pair(const NameValue *nv)
{
	char	   *name = curl_easy_escape(NULL, nv->name, 0);
	char	   *value = curl_easy_escape(NULL, nv->value, 0);
	char	   *pair = NULL;

	if (name != NULL && value != NULL)
		pair = psprintf("%s=%s", name, value);
	curl_free(name);
	curl_free(value);
	if (pair == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	return pair;
}

/*
 * base with query_params appended, then paging_params.  A parameter of the
 * base URL or of query_params that has the name of a paging parameter is
 * dropped first, so that "?page=1" in the sync's URL cannot shadow the page
 * number paging sends.  libcurl's URL API encodes names and values.
 */
static char *
page_build_url(const char *base, List *query_params, List *paging_params)
{
	List	   *appends = NIL;
	ListCell   *lc;
	CURLU	   *handle;
	char	   *query = NULL;
	char	   *url = NULL;
	volatile CURLUcode rc = CURLUE_OK;
	char	   *volatile result = NULL;

	foreach(lc, query_params)
	{
		NameValue  *nv = lfirst(lc);

		appends = lappend(appends, page_query_pair(nv));
	}

	handle = curl_url();
	if (handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	PG_TRY();
	{
		rc = curl_url_set(handle, CURLUPART_URL, base, 0);
		foreach(lc, appends)
		{
			if (rc != CURLUE_OK)
				break;
			rc = curl_url_set(handle, CURLUPART_QUERY, lfirst(lc),
							  CURLU_APPENDQUERY);
		}

		/* Keep the pieces of the query whose names paging does not set. */
		if (rc == CURLUE_OK && paging_params != NIL &&
			curl_url_get(handle, CURLUPART_QUERY, &query, 0) == CURLUE_OK)
		{
			StringInfoData kept;
			char	   *copy = pstrdup(query);
			char	   *piece;
			char	   *saveptr = NULL;

			initStringInfo(&kept);
			for (piece = strtok_r(copy, "&", &saveptr); piece != NULL;
				 piece = strtok_r(NULL, "&", &saveptr))
			{
				size_t		namelen = strcspn(piece, "=");
				int			decodedlen = 0;
				char	   *decoded;
				bool		drop = false;

				decoded = curl_easy_unescape(NULL, piece, (int) namelen,
											 &decodedlen);
				foreach(lc, paging_params)
				{
					NameValue  *nv = lfirst(lc);

					if (decoded != NULL && strlen(nv->name) == decodedlen &&
						memcmp(nv->name, decoded, decodedlen) == 0)
						drop = true;
				}
				curl_free(decoded);
				if (!drop)
					appendStringInfo(&kept, "%s%s",
									 kept.len > 0 ? "&" : "", piece);
			}
			rc = curl_url_set(handle, CURLUPART_QUERY,
							  kept.len > 0 ? kept.data : NULL, 0);
		}

		foreach(lc, paging_params)
		{
			NameValue  *nv = lfirst(lc);

			if (rc != CURLUE_OK)
				break;
			rc = curl_url_set(handle, CURLUPART_QUERY, page_query_pair(nv),
							  CURLU_APPENDQUERY);
		}

		if (rc == CURLUE_OK)
			rc = curl_url_get(handle, CURLUPART_URL, &url, 0);
		if (rc == CURLUE_OK)
			result = pstrdup(url);
	}
	PG_FINALLY();
	{
		curl_free(query);
		curl_free(url);
		curl_url_cleanup(handle);
	}
	PG_END_TRY();

	if (rc != CURLUE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not build the request URL"),
				 errdetail("%s.", curl_url_strerror(rc))));
	return result;
}

/*
 * The JSON body with the cursor token set as its top-level field param.
 * Postgres's jsonb does the merge, so numbers elsewhere in the body keep
 * every digit.
 */
static char *
page_body_with_token(const char *body, const char *param, const char *token)
{
	Jsonb	   *base;
	Jsonb	   *field;
	StringInfoData buf;
	Datum		merged;

	base = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum(body ? body : "{}")));
	if (JB_ROOT_IS_SCALAR(base) || !JB_ROOT_IS_OBJECT(base))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cursor paging with \"in\": \"body\" needs a JSON object as the body"),
				 errhint("Give body as a JSON object, or send the cursor in the query.")));

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	escape_json(&buf, param);
	appendStringInfoChar(&buf, ':');
	escape_json(&buf, token);
	appendStringInfoChar(&buf, '}');
	field = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											   CStringGetDatum(buf.data)));

	merged = DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(base),
								 JsonbPGetDatum(field));
	return DatumGetCString(DirectFunctionCall1(jsonb_out, merged));
}

/*
 * Creates the set of tokens and URLs seen in a run, in mcxt.
 */
PageSeen *
page_seen_create(MemoryContext mcxt)
{
	PageSeen   *seen = MemoryContextAlloc(mcxt, sizeof(PageSeen));
	HASHCTL		ctl;

	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(uint64);
	ctl.hcxt = mcxt;
	seen->hash = hash_create("nango pages seen", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	return seen;
}

/*
 * Adds text to seen; false when it was there already.
 */
static bool
page_seen_add(PageSeen *seen, const char *text)
{
	uint64		key;
	bool		found;

	key = hash_bytes_extended((const unsigned char *) text, strlen(text), 0);
	(void) hash_search(seen->hash, &key, HASH_ENTER, &found);
	return !found;
}

/*
 * Up to PAGE_EXCERPT_BYTES of data for an error message, with anything
 * but printable ASCII replaced, so the message is valid in any encoding.
 */
static char *
page_excerpt(const char *data, size_t len)
{
	size_t		n = Min(len, PAGE_EXCERPT_BYTES);
	char	   *out = palloc(n + 4);

	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) data[i];

		if (c == '\n' || c == '\r' || c == '\t')
			out[i] = ' ';
		else if (c < 0x20 || c >= 0x7f)
			out[i] = '?';
		else
			out[i] = (char) c;
	}
	strcpy(out + n, len > n ? "..." : "");
	return out;
}

/*
 * Raises the run's error for a response whose status is not 2xx.
 */
static void
page_check_status(const HttpResponse *resp, const char *log_url)
{
	if (resp->status >= 200 && resp->status < 300)
		return;

	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("HTTP status %ld from %s", resp->status, log_url),
			 resp->body_len > 0 ?
			 errdetail("The response begins: %s",
					   page_excerpt(resp->body, resp->body_len)) : 0));
}

/*
 * jansson allocates through these, so that one page's tree is bounded: a
 * body of small values (say 50MB of "{}," ) would otherwise take many
 * times its size in malloc'd nodes, enough to bring the server down.  Each
 * block carries its size, so frees can be counted.
 */
typedef union JsonBlock
{
	size_t		size;
	max_align_t align;
} JsonBlock;

static size_t json_budget = 0;	/* bytes one parse may take; 0: no bound */
static size_t json_used = 0;
static bool json_over_budget = false;

static void *
page_json_malloc(size_t size)
{
	JsonBlock  *block;

	if (json_budget > 0 && size > json_budget - Min(json_used, json_budget))
	{
		json_over_budget = true;
		return NULL;
	}
	block = malloc(sizeof(JsonBlock) + size);
	if (block == NULL)
		return NULL;
	block->size = size;
	json_used += size;
	return block + 1;
}

static void
page_json_free(void *ptr)
{
	JsonBlock  *block;

	if (ptr == NULL)
		return;
	block = (JsonBlock *) ptr - 1;
	json_used -= Min(block->size, json_used);
	free(block);
}

/* Called once from _PG_init, before anything uses jansson. */
void
page_global_init(void)
{
	json_set_alloc_funcs(page_json_malloc, page_json_free);
}

/* jansson's parse of a body of len bytes, within its memory bound. */
static json_t *
page_json_load(const char *data, size_t len, size_t flags,
			   json_error_t *jerror)
{
	json_t	   *root;

	json_budget = PAGE_JSON_BUDGET(len);
	json_over_budget = false;
	/* jansson leaves the error unset when an allocation fails. */
	memset(jerror, 0, sizeof(*jerror));
	root = json_loadb(data, len, flags, jerror);
	json_budget = 0;
	return root;
}

/*
 * Parses the body with jansson.  Integers beyond int64 make jansson fail,
 * so such a body is parsed again with integers read as doubles: only its
 * structure matters here, and Postgres reads the records' numbers exactly
 * from the raw text later.
 */
static json_t *
page_parse_body(const HttpResponse *resp, PageBody *body)
{
	json_error_t jerror;
	json_t	   *root;

	root = page_json_load(resp->body, resp->body_len, JSON_DECODE_ANY,
						  &jerror);
	if (root == NULL && !json_over_budget &&
		json_error_code(&jerror) == json_error_numeric_overflow)
	{
		root = page_json_load(resp->body, resp->body_len,
							  JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL,
							  &jerror);
		body->ints_as_reals = true;
	}
	if (root != NULL)
		return root;

	if (json_over_budget || jerror.text[0] == '\0' ||
		json_error_code(&jerror) == json_error_out_of_memory)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the response from %s is too large to read",
						body->log_url),
				 errdetail("Its %zu bytes of JSON need more than %zu MB once read.",
						   resp->body_len,
						   PAGE_JSON_BUDGET(resp->body_len) / (1024 * 1024)),
				 errhint("Ask the API for smaller pages.")));

	if (json_error_code(&jerror) == json_error_numeric_overflow)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the response from %s holds a number out of range",
						body->log_url),
				 errdetail("%s at line %d, column %d.", jerror.text,
						   jerror.line, jerror.column)));

	{
		const char *type = resp->content_type;
		bool		html = type && pg_strncasecmp(type, "text/html", 9) == 0;

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("the response from %s is not JSON", body->log_url),
				 errdetail("Content type %s, status %ld: %s at line %d, column %d. The response begins: %s",
						   type ? page_excerpt(type, strlen(type)) : "not given",
						   resp->status, jerror.text,
						   jerror.line, jerror.column,
						   page_excerpt(resp->body, resp->body_len)),
				 html ?
				 errhint("The API answered with an HTML page, often a login "
						 "page or a wrong URL; check the URL and the headers.") :
				 errhint("Check that the URL is the API's JSON endpoint.")));
	}
	return NULL;				/* keep compiler quiet */
}

/*
 * The value at segments below value, or NULL when the path is not there.
 * A segment of digits indexes an array.
 */
static json_t *
page_follow(json_t *value, List *segments)
{
	ListCell   *lc;

	foreach(lc, segments)
	{
		const char *segment = lfirst(lc);

		if (value == NULL)
			return NULL;
		if (json_is_object(value))
			value = json_object_get(value, segment);
		else if (json_is_array(value) &&
				 strspn(segment, "0123456789") == strlen(segment) &&
				 strlen(segment) <= 9)
			value = json_array_get(value, (size_t) atoi(segment));
		else
			return NULL;
	}
	return value;
}

/*
 * The value at a checked dotted path below value, or NULL.
 */
static json_t *
page_at(json_t *value, const char *path)
{
	return page_follow(value, sync_path_segments(path));
}

/*
 * Checks a response and reads it; see page.h.  A 204 with an empty body is
 * a page without records.
 */
void
page_read_response(const SyncConfig *sync, const PagingState *state,
				   const HttpResponse *resp, PageSeen *seen,
				   PageResult *result)
{
	PageBody	body;

	memset(result, 0, sizeof(PageResult));
	memset(&body, 0, sizeof(PageBody));
	body.log_url = http_url_for_log(resp->effective_url);

	page_check_status(resp, body.log_url);

	if (resp->status == 204 &&
		(resp->body == NULL ||
		 strspn(resp->body, " \t\r\n") == resp->body_len))
	{
		result->next = *state;
		result->next.next_url = NULL;
		result->next.token = NULL;
		result->next.pages = state->pages + 1;
		result->next.done = true;
		return;
	}

	body.root = page_parse_body(resp, &body);
	PG_TRY();
	{
		json_t	   *records = page_find_records(sync, &body, result);

		result->record_keys = page_record_keys(records,
											   result->single_record);
		page_next_state(sync, state, resp, &body, records, seen, result);
	}
	PG_FINALLY();
	{
		json_decref(body.root);
	}
	PG_END_TRY();
}

/*
 * Finds the records of a page: at response_path, or when it is not set, the
 * body itself if it is an array, else its only array-valued top-level key.
 * Sets records_path, single_record and nrecords, and returns the value.
 */
static json_t *
page_find_records(const SyncConfig *sync, PageBody *body, PageResult *result)
{
	json_t	   *root = body->root;
	json_t	   *records = NULL;

	if (sync->response_path != NULL)
	{
		result->records_path = sync_path_segments(sync->response_path);
		records = page_follow(root, result->records_path);
		if (records == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("no records at response_path \"%s\" in the response from %s",
							sync->response_path, body->log_url),
					 errhint("Set response_path to the dotted path of the records in the response.")));
	}
	else if (json_is_array(root))
	{
		result->records_path = NIL;
		records = root;
	}
	else if (json_is_object(root))
	{
		const char *key;
		json_t	   *value;
		const char *found = NULL;
		int			narrays = 0;
		StringInfoData keys;

		initStringInfo(&keys);
		json_object_foreach(root, key, value)
		{
			if (!json_is_array(value))
				continue;
			if (narrays < PAGE_MAX_KEYS_SHOWN)
				appendStringInfo(&keys, "%s\"%s\"", narrays ? ", " : "",
								 page_excerpt(key, strlen(key)));
			found = key;
			records = value;
			narrays++;
		}
		if (narrays != 1)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("cannot tell where the records are in the response from %s",
							body->log_url),
					 narrays == 0 ?
					 errdetail("The response is an object without an array-valued key.") :
					 errdetail("The response has %d array-valued keys: %s.",
							   narrays, keys.data),
					 errhint("Set response_path to the dotted path of the records.")));
		result->records_path = list_make1(pstrdup(found));
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("the response from %s is a single JSON %s, not records",
						body->log_url, json_is_null(root) ? "null" : "scalar"),
				 errhint("Check the URL, or set response_path to the dotted path of the records.")));

	if (json_is_array(records))
	{
		result->single_record = false;
		result->nrecords = (int) json_array_size(records);
	}
	else if (json_is_object(records))
	{
		result->single_record = true;
		result->nrecords = 1;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("response_path \"%s\" holds a JSON %s, not records, in the response from %s",
						sync->response_path,
						json_is_null(records) ? "null" : "scalar",
						body->log_url),
				 errhint("Set response_path to an array of records or to a single record.")));
	return records;
}

static int
page_compare_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * The distinct top-level keys of the records that are objects, sorted.
 * Sorting all keys once keeps this O(n log n) however the keys vary.
 */
static List *
page_record_keys(json_t *records, bool single_record)
{
	size_t		nrecords = single_record ? 1 : json_array_size(records);
	size_t		nkeys = 0;
	const char **keys;
	List	   *result = NIL;
	size_t		n = 0;

	for (size_t i = 0; i < nrecords; i++)
	{
		json_t	   *record;

		record = single_record ? records : json_array_get(records, i);

		if (json_is_object(record))
			nkeys += json_object_size(record);
	}
	if (nkeys == 0)
		return NIL;

	keys = palloc_extended(nkeys * sizeof(char *), MCXT_ALLOC_HUGE);
	for (size_t i = 0; i < nrecords; i++)
	{
		json_t	   *record;
		const char *key;
		json_t	   *value;

		record = single_record ? records : json_array_get(records, i);
		if (!json_is_object(record))
			continue;
		json_object_foreach(record, key, value)
			keys[n++] = key;
	}

	qsort(keys, n, sizeof(char *), page_compare_keys);
	for (size_t i = 0; i < n; i++)
	{
		if (i == 0 || strcmp(keys[i], keys[i - 1]) != 0)
			result = lappend(result, pstrdup(keys[i]));
	}
	pfree(keys);
	return result;
}

/*
 * Computes result->next, the checkpoint after this page, from the paging
 * type, and decides whether this page was the last.  A token or next URL
 * that this run followed before is a pagination loop.
 */
static void
page_next_state(const SyncConfig *sync, const PagingState *state,
				const HttpResponse *resp, PageBody *body, json_t *records,
				PageSeen *seen, PageResult *result)
{
	const PagingConfig *paging = &sync->paging;
	PagingState *next = &result->next;
	char	   *ref;

	*next = *state;
	next->next_url = NULL;
	next->token = NULL;
	next->pages = state->pages + 1;
	next->records = state->records + result->nrecords;
	next->done = false;

	switch (paging->type)
	{
		case PAGING_NONE:
			next->done = true;
			break;
		case PAGING_LINK_HEADER:
			ref = resp->link ? page_link_next(resp->link, body->log_url) : NULL;
			if (ref == NULL || ref[0] == '\0')
				next->done = true;
			else
				next->next_url = page_resolve_url(resp->effective_url, ref,
												  sync->url, body->log_url);
			break;
		case PAGING_NEXT_URL:
			{
				json_t	   *value = page_at(body->root, paging->path);

				if (value != NULL && !json_is_null(value) &&
					!json_is_string(value))
					ereport(ERROR,
							(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							 errmsg("the next page URL in the response from %s is not a string",
									body->log_url),
							 errhint("Point the paging path at the URL of the next page.")));
				ref = page_token_text(value, body, "the next page URL");
			}
			if (ref == NULL)
				next->done = true;
			else
				next->next_url = page_resolve_url(resp->effective_url, ref,
												  sync->url, body->log_url);
			break;
		case PAGING_CURSOR:
			next->token = page_token_text(page_at(body->root, paging->path),
										  body, "the paging cursor");
			next->done = (next->token == NULL);
			break;
		case PAGING_RECORD_CURSOR:
			{
				json_t	   *last = NULL;

				if (result->single_record)
					last = records;
				else if (result->nrecords > 0)
					last = json_array_get(records, result->nrecords - 1);
				if (json_is_object(last))
					next->token = page_token_text(page_at(last, paging->field),
												  body, "the record cursor");
				next->done = (next->token == NULL);
				break;
			}
		case PAGING_OFFSET:
			next->offset = state->offset + result->nrecords;
			if (result->nrecords < paging->limit)
				next->done = true;
			break;
		case PAGING_PAGE:
			if (pg_add_s64_overflow(state->page, 1, &next->page))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("the page number of paging is out of range"),
						 errhint("Give paging a smaller \"start\".")));
			if (paging->size > 0 && result->nrecords < paging->size)
				next->done = true;
			break;
	}

	/* Stop conditions every type shares, checked only while needed. */
	if (!next->done && result->nrecords == 0)
		next->done = true;
	if (!next->done && paging->max_pages > 0 &&
		next->pages >= paging->max_pages)
		next->done = true;
	if (!next->done && paging->has_more_path != NULL &&
		!page_has_more(page_at(body->root, paging->has_more_path), body))
		next->done = true;
	if (!next->done && paging->total_path != NULL)
	{
		int64		total;

		total = page_total(page_at(body->root, paging->total_path), body);

		if (total >= 0 && next->records >= total)
			next->done = true;
	}

	if (next->done)
		return;

	if (next->next_url != NULL && !page_seen_add(seen, next->next_url))
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("pagination loop: the next page URL %s repeated",
						http_url_for_log(next->next_url)),
				 errdetail("Page %lld of the run points at a page it read before.",
						   (long long) next->pages)));
	/*
	 * With offset and page paging the next request is ours, not the API's:
	 * an API that ignores the parameter answers every page alike, which
	 * only the repeated body shows.
	 */
	if ((paging->type == PAGING_OFFSET || paging->type == PAGING_PAGE) &&
		!page_seen_add(seen, resp->body))
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("pagination loop: page %lld of the run is the same as an earlier page",
						(long long) next->pages),
				 errhint("Check that the API reads \"%s\"; max_pages also ends a run.",
						 paging->type == PAGING_OFFSET ?
						 paging->offset_param : paging->page_param)));
	if (next->token != NULL && !page_seen_add(seen, next->token))
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("pagination loop: the paging token repeated"),
				 errdetail("Page %lld of the run gave a token an earlier page gave.",
						   (long long) next->pages)));
}

/*
 * The text of a token (what names it, for errors): strings as they are,
 * integers exactly, other scalars as their JSON text.  NULL when missing,
 * null or empty, which ends the run.
 */
static char *
page_token_text(json_t *value, const PageBody *body, const char *what)
{
	char	   *text;

	if (value == NULL || json_is_null(value))
		return NULL;

	switch (json_typeof(value))
	{
		case JSON_STRING:
			if (json_string_length(value) == 0)
				return NULL;
			if (json_string_length(value) > NANGO_MAX_TOKEN_BYTES)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("%s in the response from %s is longer than %d bytes",
								what, body->log_url, NANGO_MAX_TOKEN_BYTES)));
			text = pnstrdup(json_string_value(value),
							json_string_length(value));
			break;
		case JSON_INTEGER:
			text = psprintf("%" JSON_INTEGER_FORMAT, json_integer_value(value));
			break;
		case JSON_REAL:
			{
				double		d = json_real_value(value);

				/* Integers past 2^53 read as doubles lost their digits. */
				if (body->ints_as_reals && d == floor(d))
				{
					if (fabs(d) >= 9007199254740992.0)
						ereport(ERROR,
								(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
								 errmsg("%s in the response from %s is an integer too large to read exactly",
										what, body->log_url)));
					text = psprintf("%.0f", d);
				}
				else
				{
					text = palloc(DOUBLE_SHORTEST_DECIMAL_LEN);
					double_to_shortest_decimal_buf(d, text);
				}
				break;
			}
		case JSON_TRUE:
			text = pstrdup("true");
			break;
		case JSON_FALSE:
			text = pstrdup("false");
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("%s in the response from %s is a JSON %s, not a scalar",
							what, body->log_url,
							json_is_object(value) ? "object" : "array"),
					 errhint("Point the paging path at a string or a number.")));
			text = NULL;		/* keep compiler quiet */
	}
	return text;
}

/*
 * The value at has_more_path as a boolean: null means false; true, false,
 * numbers and the strings "true" and "false" are read as such.  A missing
 * path is an error rather than a silent stop, as it is most often a typo.
 */
static bool
page_has_more(json_t *value, const PageBody *body)
{
	if (value != NULL)
	{
		switch (json_typeof(value))
		{
			case JSON_TRUE:
				return true;
			case JSON_FALSE:
			case JSON_NULL:
				return false;
			case JSON_INTEGER:
			case JSON_REAL:
				return json_number_value(value) != 0;
			case JSON_STRING:
				if (pg_strcasecmp(json_string_value(value), "true") == 0)
					return true;
				if (pg_strcasecmp(json_string_value(value), "false") == 0)
					return false;
				break;
			default:
				break;
		}
	}

	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("paging \"has_more_path\" %s in the response from %s",
					value == NULL ? "is not" : "does not hold a boolean",
					body->log_url),
			 errhint("Point has_more_path at the boolean that says whether more pages follow.")));
	return false;				/* keep compiler quiet */
}

/*
 * The value at total_path as a count of records, or -1 when it is null.
 * Numbers and strings of digits are accepted; a missing path is an error.
 */
static int64
page_total(json_t *value, const PageBody *body)
{
	if (value != NULL)
	{
		switch (json_typeof(value))
		{
			case JSON_NULL:
				return -1;
			case JSON_INTEGER:
				return Max(json_integer_value(value), 0);
			case JSON_REAL:
				if (json_real_value(value) >= (double) PG_INT64_MAX)
					return PG_INT64_MAX;
				return (int64) Max(json_real_value(value), 0);
			case JSON_STRING:
				{
					const char *s = json_string_value(value);
					char	   *end;
					long long	n;

					errno = 0;
					n = strtoll(s, &end, 10);
					if (s[0] != '\0' && *end == '\0' && errno == 0 && n >= 0)
						return (int64) n;
					break;
				}
			default:
				break;
		}
	}

	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("paging \"total_path\" %s in the response from %s",
					value == NULL ? "is not" : "does not hold a number",
					body->log_url),
			 errhint("Point total_path at the total number of records.")));
	return -1;					/* keep compiler quiet */
}

/* RFC 9110 token characters, for link parameter names and values. */
static bool
page_is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/*
 * The target of the first link whose rel holds "next" in a Link header
 * value (RFC 8288, section 3): links separated by commas, each
 * "<target>" followed by ";"-separated parameters whose values are tokens
 * or quoted strings.  rel may hold several space-separated types; only its
 * first occurrence counts; names and types are case-insensitive.  Returns
 * NULL when no link is "next".  The header is never quoted in an error.
 */
static char *
page_link_next(const char *header, const char *log_url)
{
	const char *p = header;

#define SKIP_OWS(p) while (*(p) == ' ' || *(p) == '\t') (p)++
#define MALFORMED() \
	ereport(ERROR, \
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION), \
			 errmsg("malformed Link header in the response from %s", \
					log_url), \
			 errdetail("Near byte %d of the header.", (int) (p - header))))

	for (;;)
	{
		const char *target;
		const char *target_end;
		bool		seen_rel = false;
		bool		is_next = false;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			return NULL;
		if (*p != '<')
			MALFORMED();
		target = ++p;
		target_end = strchr(p, '>');
		if (target_end == NULL)
			MALFORMED();
		p = target_end + 1;

		/* The parameters, up to the comma that ends this link. */
		for (;;)
		{
			const char *name;
			size_t		namelen;
			StringInfoData value;

			SKIP_OWS(p);
			if (*p == ',' || *p == '\0')
				break;
			if (*p != ';')
				MALFORMED();
			p++;
			SKIP_OWS(p);
			if (*p == ',' || *p == '\0' || *p == ';')
				continue;		/* an empty parameter */

			name = p;
			while (page_is_tchar(*p))
				p++;
			namelen = p - name;
			if (namelen == 0)
				MALFORMED();
			SKIP_OWS(p);

			initStringInfo(&value);
			if (*p == '=')
			{
				p++;
				SKIP_OWS(p);
				if (*p == '"')
				{
					for (p++; *p != '"'; p++)
					{
						if (*p == '\\' && p[1] != '\0')
							p++;
						if (*p == '\0')
							MALFORMED();
						appendStringInfoChar(&value, *p);
					}
					p++;
				}
				else
				{
					while (page_is_tchar(*p))
						appendStringInfoChar(&value, *p++);
				}
			}

			if (namelen == 3 && pg_strncasecmp(name, "rel", 3) == 0 &&
				!seen_rel)
			{
				char	   *saveptr = NULL;

				seen_rel = true;
				for (char *type = strtok_r(value.data, " \t", &saveptr);
					 type != NULL;
					 type = strtok_r(NULL, " \t", &saveptr))
				{
					if (pg_strcasecmp(type, "next") == 0)
						is_next = true;
				}
			}
			pfree(value.data);
		}

		if (is_next)
			return pnstrdup(target, target_end - target);
	}

#undef SKIP_OWS
#undef MALFORMED
}

/*
 * ref resolved against base (the URL the page came from), as libcurl
 * resolves relative references.  Only http and https are followed, and
 * only to the scheme, host and port of the sync's own URL: the sync's
 * headers, credentials among them, go with every request.
 */
static char *
page_resolve_url(const char *base, const char *ref, const char *origin_url,
				 const char *log_url)
{
	CURLU	   *handle;
	char	   *scheme = NULL;
	char	   *url = NULL;
	volatile bool ok = false;
	char	   *volatile result = NULL;

	handle = curl_url();
	if (handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	PG_TRY();
	{
		if (curl_url_set(handle, CURLUPART_URL, base, 0) == CURLUE_OK &&
			curl_url_set(handle, CURLUPART_URL, ref, 0) == CURLUE_OK &&
			curl_url_get(handle, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
			(strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
			curl_url_get(handle, CURLUPART_URL, &url, 0) == CURLUE_OK &&
			strlen(url) <= NANGO_MAX_TOKEN_BYTES)
		{
			result = pstrdup(url);
			ok = true;
		}
	}
	PG_FINALLY();
	{
		curl_free(scheme);
		curl_free(url);
		curl_url_cleanup(handle);
	}
	PG_END_TRY();

	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("the next page URL in the response from %s is not a valid http or https URL",
						log_url),
				 errdetail("Next page URLs must be http or https, at most %d bytes.",
						   NANGO_MAX_TOKEN_BYTES)));
	{
		char	   *origin = http_url_origin(origin_url);
		char	   *next_origin = http_url_origin(result);

		if (origin == NULL || next_origin == NULL ||
			pg_strcasecmp(origin, next_origin) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
					 errmsg("the next page URL in the response from %s points at another host",
							log_url),
					 errdetail("The next page is at %s; the sync's URL is at %s.",
							   next_origin ? next_origin : "?",
							   origin ? origin : "?"),
					 errhint("A sync follows next page URLs only on the host of "
							 "its own URL, since its headers go with every request.")));
	}
	return result;
}

/*
 * A record key in snake_case, the form column names take: "createdAt" ->
 * "created_at", "HTMLUrl" -> "html_url", '-' and ' ' -> '_'.  An upper-case
 * letter starts a word after a lower-case letter or a digit, and ends an
 * acronym when a lower-case letter follows it.
 */
char *
page_snake_case(const char *key)
{
	size_t		len = strlen(key);
	StringInfoData buf;

#define IS_UPPER(c) ((c) >= 'A' && (c) <= 'Z')
#define IS_LOWER(c) ((c) >= 'a' && (c) <= 'z')
#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')

	initStringInfo(&buf);
	for (size_t i = 0; i < len; i++)
	{
		char		c = key[i];
		char		prev = i > 0 ? key[i - 1] : '\0';
		char		following = key[i + 1];

		if (c == '-' || c == ' ')
		{
			appendStringInfoChar(&buf, '_');
			continue;
		}
		if (!IS_UPPER(c))
		{
			appendStringInfoChar(&buf, c);
			continue;
		}
		if (buf.len > 0 && buf.data[buf.len - 1] != '_' &&
			(IS_LOWER(prev) || IS_DIGIT(prev) ||
			 (IS_UPPER(prev) && IS_LOWER(following))))
			appendStringInfoChar(&buf, '_');
		appendStringInfoChar(&buf, c - 'A' + 'a');
	}
	return buf.data;

#undef IS_UPPER
#undef IS_LOWER
#undef IS_DIGIT
}

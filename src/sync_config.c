/*
 * sync_config.c
 *		Checks of the arguments that describe a sync: its URL, method,
 *		headers, query parameters, columns and dotted paths.
 *
 * add_sync runs these on the user's input, and a run runs them again on
 * what it loads from nango.syncs, so the rest of nango only ever sees
 * checked values.  URLs are parsed by libcurl's URL API, the same parser
 * that later sends the request.  The jsonb arguments are read with
 * Postgres's own jsonb, which keeps every digit of a number that becomes a
 * query parameter.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "common/string.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "nango.h"
#include "sync_config.h"

/* Bounds on what a path may look like; far beyond any real API. */
#define SYNC_MAX_PATH_BYTES		1024
#define SYNC_MAX_PATH_SEGMENTS	64

static Jsonb *sync_parse_object(const char *argname, const char *json);
static bool sync_is_token(const char *name);
static bool sync_is_framing_header(const char *name);
static char *sync_scalar_text(const JsonbValue *v);
static bool sync_has_control_character(const char *text);
static size_t sync_encoded_length(const char *text);

/*
 * libcurl forgives "http:/host" and "http:///host", reading "host" as the
 * host; in a sync's URL the host must follow "scheme://", so that a typo
 * is refused rather than sent somewhere.
 */
static bool
sync_url_has_authority(const char *url)
{
	const char *colon = strchr(url, ':');

	return colon != NULL && strncmp(colon, "://", 3) == 0 &&
		colon[3] != '\0' && colon[3] != '/' && colon[3] != '\\';
}

/*
 * Checks that url is an absolute http or https URL with a host, and returns
 * it as libcurl normalises it.  argname names the argument in the error.
 * The URL itself is never quoted in the error: its query may hold a key.
 */
char *
sync_check_url(const char *argname, const char *url)
{
	CURLU	   *handle;
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *normalised = NULL;
	const char *volatile problem = NULL;
	char	   *volatile result = NULL;

	if (url == NULL || url[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: the URL is empty", argname),
				 errhint("Give an absolute URL that starts with http:// or https://.")));
	if (strlen(url) > NANGO_MAX_TOKEN_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: the URL is longer than %d bytes",
						argname, NANGO_MAX_TOKEN_BYTES),
				 errhint("Send long parameters in the body of a POST.")));

	handle = curl_url();
	if (handle == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));

	PG_TRY();
	{
		CURLUcode	rc = curl_url_set(handle, CURLUPART_URL, url, 0);

		if (rc != CURLUE_OK)
			problem = curl_url_strerror(rc);
		else if (curl_url_get(handle, CURLUPART_SCHEME, &scheme,
							  0) != CURLUE_OK ||
				 (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
			problem = "The scheme is not http or https";
		else if (!sync_url_has_authority(url) ||
				 curl_url_get(handle, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
				 host[0] == '\0')
			problem = "The URL has no host";
		else if (curl_url_get(handle, CURLUPART_URL, &normalised,
							  0) != CURLUE_OK)
			problem = "The URL cannot be rebuilt";
		else
			result = pstrdup(normalised);
	}
	PG_FINALLY();
	{
		curl_free(scheme);
		curl_free(host);
		curl_free(normalised);
		curl_url_cleanup(handle);
	}
	PG_END_TRY();

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: not an absolute http or https URL",
						argname),
				 errdetail("%s.", problem),
				 errhint("Give an absolute URL that starts with http:// or https://.")));
	return result;
}

/*
 * Checks the method argument and returns it in upper case.
 */
char *
sync_check_method(const char *method)
{
	static const char *const methods[] = {"GET", "POST", "PUT", "PATCH"};

	if (method != NULL)
	{
		for (int i = 0; i < lengthof(methods); i++)
		{
			if (pg_strcasecmp(method, methods[i]) == 0)
				return pstrdup(methods[i]);
		}
	}

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid method \"%s\"",
					method ? pnstrdup(method, 16) : "(null)"),
			 errhint("The method must be GET, POST, PUT or PATCH.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * Parses jsonb text that must be an object, for the argument argname.
 */
static Jsonb *
sync_parse_object(const char *argname, const char *json)
{
	Jsonb	   *jb;

	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	if (JB_ROOT_IS_SCALAR(jb) || !JB_ROOT_IS_OBJECT(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: not a JSON object", argname),
				 errhint("Give %s as a JSON object such as '{\"name\": \"value\"}'.",
						 argname)));
	return jb;
}

/*
 * True when name is an HTTP token (RFC 9110, section 5.6.2), the only
 * thing a header name may be.
 */
static bool
sync_is_token(const char *name)
{
	if (name[0] == '\0')
		return false;
	for (const char *p = name; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL)
			continue;
		return false;
	}
	return true;
}

/*
 * The text a scalar query parameter value is sent as: strings as they are,
 * numbers exactly as jsonb holds them, booleans as true or false.  NULL for
 * anything else.
 */
static char *
sync_scalar_text(const JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
										NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return NULL;
	}
}

/*
 * Parses the headers or query_params argument (jsonb text; NULL means
 * none) into a List of NameValue.  Header values must be strings, and
 * neither names nor values may break the header block; error messages name
 * the header but never show its value, which may be a secret.
 */
List *
sync_parse_name_values(const char *argname, const char *json, bool headers)
{
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	char	   *name = NULL;
	List	   *result = NIL;
	size_t		query_bytes = 0;

	if (json == NULL)
		return NIL;
	jb = sync_parse_object(argname, json);

	it = JsonbIteratorInit(&jb->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		NameValue  *nv;
		char	   *value;

		if (token == WJB_KEY)
		{
			name = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (token != WJB_VALUE)
			continue;

		if (headers && !sync_is_token(name))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: \"%s\" is not a valid header name",
							argname, name),
					 errhint("Header names are made of letters, digits and !#$%%&'*+-.^_`|~.")));
		if (headers && sync_is_framing_header(name))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: \"%s\" is set by nango itself",
							argname, name),
					 errdetail("Host, Content-Length, Transfer-Encoding and "
							   "Connection frame the request; a wrong one "
							   "breaks it."),
					 errhint("Leave the header out.")));
		if (!headers && name[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: a parameter name is empty", argname),
					 errhint("Give each query parameter a name.")));

		if (headers && v.type != jbvString)
			value = NULL;
		else
			value = sync_scalar_text(&v);
		if (value == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: the value of \"%s\" is not a %s",
							argname, name,
							headers ? "string" : "string, number or boolean"),
					 errhint(headers ?
							 "Give each header value as a JSON string." :
							 "Give each query parameter value as a JSON string, number or boolean.")));
		if (headers && strpbrk(value, "\r\n") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: the value of \"%s\" contains a line break",
							argname, name),
					 errhint("Header values must be on one line.")));
		if (headers && sync_has_control_character(value))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: the value of \"%s\" contains a control character",
							argname, name),
					 errdetail("HTTP allows no control character but tab in a header value."),
					 errhint("Remove it from the value.")));
		query_bytes += sync_encoded_length(name) + sync_encoded_length(value);
		if (!headers && query_bytes > NANGO_MAX_TOKEN_BYTES)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s: the parameters take more than %d bytes of a URL",
							argname, NANGO_MAX_TOKEN_BYTES),
					 errdetail("They go into the URL of every request."),
					 errhint("Send long parameters in the body of a POST.")));

		nv = palloc(sizeof(NameValue));
		nv->name = name;
		nv->value = value;
		result = lappend(result, nv);
	}
	return result;
}

/* The length of text once percent-encoded in a URL's query. */
static size_t
sync_encoded_length(const char *text)
{
	size_t		len = 0;

	for (const char *c = text; *c; c++)
		len += ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				(*c >= '0' && *c <= '9') || strchr("-._~", *c)) ? 1 : 3;
	return len;
}

/* True when text holds a control character other than tab. */
static bool
sync_has_control_character(const char *text)
{
	for (const unsigned char *c = (const unsigned char *) text; *c; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return true;
	return false;
}

/* Headers that libcurl writes from the request itself. */
static bool
sync_is_framing_header(const char *name)
{
	static const char *const framing[] = {"Host", "Content-Length",
	"Transfer-Encoding", "Connection"};

	for (int i = 0; i < lengthof(framing); i++)
		if (pg_strcasecmp(name, framing[i]) == 0)
			return true;
	return false;
}

/*
 * Parses the columns argument (jsonb text; NULL means none): an object of
 * column name to dotted path in a record, "$" being the whole record.
 */
List *
sync_parse_columns(const char *json)
{
	Jsonb	   *jb;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken token;
	char	   *column = NULL;
	List	   *result = NIL;

	if (json == NULL)
		return NIL;
	jb = sync_parse_object("columns", json);

	it = JsonbIteratorInit(&jb->root);
	while ((token = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		ColumnPath *cp;
		char	   *path;

		if (token == WJB_KEY)
		{
			column = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (token != WJB_VALUE)
			continue;

		if (column[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid columns: a column name is empty"),
					 errhint("Map each column name to a dotted path, as in '{\"author\": \"user.login\"}'.")));
		if (v.type != jbvString)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid columns: the path of column \"%s\" is not a string",
							column),
					 errhint("Map each column name to a dotted path, as in "
							 "'{\"author\": \"user.login\"}', or to \"$\" "
							 "for the whole record.")));

		path = pnstrdup(v.val.string.val, v.val.string.len);
		sync_check_path(psprintf("columns entry \"%s\"", column), path, true);

		cp = palloc(sizeof(ColumnPath));
		cp->column = column;
		cp->path = path;
		result = lappend(result, cp);
	}
	return result;
}

/*
 * Checks a dotted path: non-empty segments separated by '.', or "$" (the
 * whole value) when allow_root.  Segments made of digits index arrays.
 */
void
sync_check_path(const char *argname, const char *path, bool allow_root)
{
	const char *problem = NULL;
	int			segments = 1;

	if (path == NULL || path[0] == '\0')
		problem = "The path is empty";
	else if (strcmp(path, "$") == 0)
	{
		if (!allow_root)
			problem = "\"$\" (the whole value) is not allowed here";
	}
	else if (strlen(path) > SYNC_MAX_PATH_BYTES)
		problem = "The path is too long";
	else
	{
		for (const char *p = path; *p; p++)
		{
			if (*p != '.')
				continue;
			segments++;
			if (p == path || p[1] == '.' || p[1] == '\0')
			{
				problem = "A segment of the path is empty";
				break;
			}
		}
		if (problem == NULL && segments > SYNC_MAX_PATH_SEGMENTS)
			problem = "The path has too many segments";
	}

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s: \"%s\" is not a dotted path", argname,
						path ? pnstrdup(path, 64) : "(null)"),
				 errdetail("%s.", problem),
				 allow_root ?
				 errhint("Give key names separated by dots, as in "
						 "\"data.items\" or \"items.0.id\", or \"$\" for "
						 "the whole value.") :
				 errhint("Give key names separated by dots, as in \"data.items\" or \"items.0.id\".")));
}

/*
 * Splits a checked dotted path into a List of palloc'd segments.  "$", the
 * whole value, is the empty list.
 */
List *
sync_path_segments(const char *path)
{
	List	   *segments = NIL;
	const char *start = path;

	if (strcmp(path, "$") == 0)
		return NIL;

	for (const char *p = path;; p++)
	{
		if (*p == '.' || *p == '\0')
		{
			segments = lappend(segments, pnstrdup(start, p - start));
			if (*p == '\0')
				break;
			start = p + 1;
		}
	}
	return segments;
}

/*
 * jansson reads a page as UTF-8, so a path it follows must be UTF-8 too.
 * In a database of another encoding (SQL_ASCII aside, whose bytes are
 * taken as they are) such text must be ASCII, the same in both.
 */
void
sync_check_page_text(const char *argname, const char *text)
{
	int			encoding = GetDatabaseEncoding();

	if (encoding == PG_UTF8 || encoding == PG_SQL_ASCII || pg_is_ascii(text))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s: its non-ASCII characters need a UTF8 database",
					argname),
			 errdetail("This database's encoding is %s; responses are read as UTF-8.",
					   GetDatabaseEncodingName()),
			 errhint("Name the keys in ASCII, or use a database created with ENCODING 'UTF8'.")));
}

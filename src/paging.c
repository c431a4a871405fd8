/*
 * paging.c
 *		The paging argument of a sync, and the checkpoint of a run.
 *
 * paging_parse turns the paging argument into a PagingConfig, refusing
 * anything it does not understand with an error that names the key and
 * lists what is accepted.  The checkpoint (PagingState) travels as a small
 * JSON object in nango.sync_runs.checkpoint.  How a state becomes a request
 * and a response becomes the next state is in page.c.
 */
#include "postgres.h"

#include <jansson.h>

#include "lib/stringinfo.h"

#include "nango.h"
#include "paging.h"
#include "sync_config.h"

/* The keys each paging type accepts besides the common ones. */
typedef struct PagingTypeInfo
{
	const char *name;
	PagingType	type;
	const char *const keys[6];
} PagingTypeInfo;

static const PagingTypeInfo paging_types[] = {
	{"link_header", PAGING_LINK_HEADER, {NULL}},
	{"next_url", PAGING_NEXT_URL, {"path", NULL}},
	{"cursor", PAGING_CURSOR, {"path", "param", "in", NULL}},
	{"record_cursor", PAGING_RECORD_CURSOR, {"field", "param", NULL}},
	{"offset", PAGING_OFFSET, {"offset_param", "limit_param", "limit", NULL}},
	{"page", PAGING_PAGE, {"page_param", "start", "size_param", "size", NULL}},
};

static const char *const paging_common_keys[] = {
	"type", "has_more_path", "total_path", "max_pages", NULL
};

static const PagingTypeInfo *paging_find_type(json_t *root);
static void paging_check_keys(json_t *root, const PagingTypeInfo *info);
static char *paging_string(json_t *root, const char *key, bool required,
						   const char *dflt);
static char *paging_path(json_t *root, const char *key, bool required,
						 bool allow_root);
static void paging_check_distinct(const char *param1, const char *param2);
static int64 paging_integer(json_t *root, const char *key, bool positive,
							int64 dflt);
static char *paging_accepted_keys(const PagingTypeInfo *info);

/*
 * Parses the paging argument: jsonb text, or NULL for a single request.
 * Every malformed value raises ERROR with ERRCODE_INVALID_PARAMETER_VALUE,
 * "invalid paging" and the offending key in the message, and a hint that
 * says what is accepted.  The jansson tree is released on every path.
 */
void
paging_parse(const char *json, PagingConfig *config)
{
	json_t	   *root;
	json_error_t jerror;

	memset(config, 0, sizeof(PagingConfig));
	config->type = PAGING_NONE;
	if (json == NULL)
		return;

	sync_check_page_text("paging", json);
	root = json_loads(json, JSON_DECODE_ANY, &jerror);
	if (root == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid paging: %s", jerror.text),
				 errhint("Give numbers in paging as integers that fit in "
						 "64 bits.")));
	if (!json_is_object(root))
	{
		json_decref(root);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid paging: not a JSON object"),
				 errhint("Give paging as an object such as "
						 "'{\"type\": \"link_header\"}', or NULL for a "
						 "single request.")));
	}

	PG_TRY();
	{
		const PagingTypeInfo *info = paging_find_type(root);

		paging_check_keys(root, info);
		config->type = info->type;

		switch (info->type)
		{
			case PAGING_NONE:
			case PAGING_LINK_HEADER:
				break;
			case PAGING_NEXT_URL:
				config->path = paging_path(root, "path", true, false);
				break;
			case PAGING_CURSOR:
				{
					char	   *in;

					config->path = paging_path(root, "path", true, false);
					config->param = paging_string(root, "param", true, NULL);
					in = paging_string(root, "in", false, "query");
					if (strcmp(in, "body") == 0)
						config->in_body = true;
					else if (strcmp(in, "query") != 0)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
								 errmsg("invalid paging \"in\": \"%s\"",
										pnstrdup(in, 32)),
								 errhint("\"in\" is \"query\" (the default) or \"body\".")));
					break;
				}
			case PAGING_RECORD_CURSOR:
				config->field = paging_path(root, "field", true, false);
				config->param = paging_string(root, "param", true, NULL);
				break;
			case PAGING_OFFSET:
				config->offset_param = paging_string(root, "offset_param",
													 false, "offset");
				config->limit_param = paging_string(root, "limit_param",
													false, "limit");
				config->limit = paging_integer(root, "limit", true, 100);
				paging_check_distinct(config->offset_param,
									  config->limit_param);
				break;
			case PAGING_PAGE:
				config->page_param = paging_string(root, "page_param",
												   false, "page");
				config->start = paging_integer(root, "start", false, 1);
				config->size_param = paging_string(root, "size_param",
												   false, NULL);
				config->size = paging_integer(root, "size", true, 0);
				if (config->size_param != NULL && config->size == 0)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("invalid paging: \"size_param\" is given without \"size\""),
							 errhint("Give \"size\", the number of records a page asks for, with \"size_param\".")));
				if (config->size_param != NULL)
					paging_check_distinct(config->page_param,
										  config->size_param);
				break;
		}

		config->has_more_path = paging_path(root, "has_more_path", false,
											false);
		config->total_path = paging_path(root, "total_path", false, false);
		config->max_pages = paging_integer(root, "max_pages", true, 0);
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();
}

/* Two query parameters of one paging type must have two names. */
static void
paging_check_distinct(const char *param1, const char *param2)
{
	if (strcmp(param1, param2) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid paging: two parameters are both named \"%s\"",
						pnstrdup(param1, 64)),
				 errhint("Give each query parameter of the paging its own name.")));
}

/*
 * The entry of paging_types named by the "type" key of root.
 */
static const PagingTypeInfo *
paging_find_type(json_t *root)
{
	json_t	   *type = json_object_get(root, "type");

	if (type == NULL || !json_is_string(type))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid paging \"type\": %s",
						type == NULL ? "missing" : "not a string"),
				 errhint("\"type\" is one of link_header, next_url, cursor, record_cursor, offset or page.")));

	for (int i = 0; i < lengthof(paging_types); i++)
	{
		if (strcmp(json_string_value(type), paging_types[i].name) == 0)
			return &paging_types[i];
	}

	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid paging \"type\": unknown type \"%s\"",
					pnstrdup(json_string_value(type), 64)),
			 errhint("\"type\" is one of link_header, next_url, cursor, record_cursor, offset or page.")));
	return NULL;				/* keep compiler quiet */
}

/*
 * Refuses any key of root that neither every type nor this type accepts.
 */
static void
paging_check_keys(json_t *root, const PagingTypeInfo *info)
{
	const char *key;
	json_t	   *value;

	json_object_foreach(root, key, value)
	{
		bool		known = false;

		for (int i = 0; paging_common_keys[i] != NULL && !known; i++)
			known = (strcmp(key, paging_common_keys[i]) == 0);
		for (int i = 0; info->keys[i] != NULL && !known; i++)
			known = (strcmp(key, info->keys[i]) == 0);

		if (!known)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid paging: unknown key \"%s\" for type %s",
							pnstrdup(key, 64), info->name),
					 errhint("Paging of type %s accepts %s.",
							 info->name, paging_accepted_keys(info))));
	}
}

/*
 * The keys a type accepts, as a list for a hint.
 */
static char *
paging_accepted_keys(const PagingTypeInfo *info)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; paging_common_keys[i] != NULL; i++)
		appendStringInfo(&buf, "%s\"%s\"", i > 0 ? ", " : "",
						 paging_common_keys[i]);
	for (int i = 0; info->keys[i] != NULL; i++)
		appendStringInfo(&buf, ", \"%s\"", info->keys[i]);
	return buf.data;
}

/*
 * A non-empty string value of root, or dflt when the key is absent and not
 * required.  Returned palloc'd (dflt too), or NULL when dflt is NULL.
 */
static char *
paging_string(json_t *root, const char *key, bool required, const char *dflt)
{
	json_t	   *value = json_object_get(root, key);

	if (value == NULL && !required)
		return dflt ? pstrdup(dflt) : NULL;
	if (value == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid paging: \"%s\" is missing", key),
				 errhint("Paging of type \"%s\" needs \"%s\".",
						 json_string_value(json_object_get(root, "type")),
						 key)));
	if (!json_is_string(value) || json_string_length(value) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid paging \"%s\": not a non-empty string", key),
				 errhint("Give \"%s\" as a JSON string.", key)));
	return pnstrdup(json_string_value(value), json_string_length(value));
}

/*
 * Like paging_string, for a dotted path checked by sync_check_path.
 */
static char *
paging_path(json_t *root, const char *key, bool required, bool allow_root)
{
	char	   *path = paging_string(root, key, required, NULL);

	if (path != NULL)
		sync_check_path(psprintf("paging \"%s\"", key), path, allow_root);
	return path;
}

/*
 * An integer value of root (positive when asked), or dflt when absent.
 */
static int64
paging_integer(json_t *root, const char *key, bool positive, int64 dflt)
{
	json_t	   *value = json_object_get(root, key);

	if (value == NULL)
		return dflt;
	if (!json_is_integer(value) ||
		(positive && json_integer_value(value) <= 0) ||
		(!positive && json_integer_value(value) < 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid paging \"%s\": not a %s integer", key,
						positive ? "positive" : "non-negative"),
				 errhint("Give \"%s\" as a JSON integer%s.", key,
						 positive ? " greater than zero" : " of zero or more")));
	return (int64) json_integer_value(value);
}

/*
 * The state of a run before its first request: no token or next URL yet,
 * offset zero, the configured first page number.
 */
void
paging_initial_state(const PagingConfig *config, PagingState *state)
{
	memset(state, 0, sizeof(PagingState));
	state->offset = 0;
	state->page = (config->type == PAGING_PAGE) ? config->start : 0;
}

/*
 * The checkpoint as JSON text, for nango.sync_runs.checkpoint.  Keys that
 * do not apply (no token, no next URL) are left out.  It is ASCII, a
 * token's other characters escaped, so that it is valid text in a database
 * of any encoding; jsonb then holds them in the database's encoding or
 * fails the page if it cannot.
 */
#define PAGING_DUMP_FLAGS	(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
char *
paging_state_to_json(const PagingState *state)
{
	json_t	   *root;
	char	   *result;
	size_t		len;

	/*
	 * json_pack, not json_object(): the postgres executable exports a SQL
	 * function named json_object, which the dynamic linker binds to our
	 * call in place of jansson's.
	 */
	root = json_pack("{s:s*, s:s*, s:I, s:I, s:I, s:I, s:b}",
					 "next_url", state->next_url,
					 "token", state->token,
					 "offset", (json_int_t) state->offset,
					 "page", (json_int_t) state->page,
					 "pages", (json_int_t) state->pages,
					 "records", (json_int_t) state->records,
					 "done", (int) state->done);
	if (root == NULL)
		elog(ERROR, "could not build the checkpoint of a run");

	/*
	 * json_dumpb writes into our buffer, so nothing jansson allocated
	 * outlives this function (its allocator is nango's, see page.c).
	 */
	len = json_dumpb(root, NULL, 0, PAGING_DUMP_FLAGS);
	result = len > 0 ? palloc(len + 1) : NULL;
	if (result != NULL &&
		json_dumpb(root, result, len, PAGING_DUMP_FLAGS) == len)
		result[len] = '\0';
	else
		result = NULL;
	json_decref(root);
	if (result == NULL)
		elog(ERROR, "could not write the checkpoint of a run");
	return result;
}

/*
 * Reads a checkpoint written by paging_state_to_json.  A checkpoint that is
 * not such an object means the catalog was changed by hand: ERROR.
 */
void
paging_state_from_json(const char *json, PagingState *state)
{
	json_t	   *root;
	json_t	   *next_url;
	json_t	   *token;
	json_error_t jerror;
	json_int_t	offset = 0,
				page = 0,
				pages = 0,
				records = 0;
	int			done = 0;
	int			rc;

	memset(state, 0, sizeof(PagingState));
	root = json_loads(json, JSON_DECODE_ANY, &jerror);
	if (root == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("malformed checkpoint of a run: not JSON")));

	next_url = NULL;
	token = NULL;
	rc = json_unpack_ex(root, &jerror, JSON_STRICT,
						"{s?o, s?o, s:I, s:I, s:I, s:I, s:b}",
						"next_url", &next_url, "token", &token,
						"offset", &offset, "page", &page, "pages", &pages,
						"records", &records, "done", &done);
	if (rc != 0 ||
		(next_url != NULL && !json_is_string(next_url)) ||
		(token != NULL && !json_is_string(token)) ||
		offset < 0 || pages < 0 || records < 0)
	{
		json_decref(root);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("malformed checkpoint of a run"),
				 errhint("The checkpoint is written by nango; do not change it by hand.")));
	}

	PG_TRY();
	{
		if (next_url != NULL)
			state->next_url = pstrdup(json_string_value(next_url));
		if (token != NULL)
			state->token = pstrdup(json_string_value(token));
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();

	state->offset = offset;
	state->page = page;
	state->pages = pages;
	state->records = records;
	state->done = done != 0;
}

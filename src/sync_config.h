/*
 * sync_config.h
 *		One sync's configuration, as stored in nango.syncs, parsed and
 *		checked once so the run and the writer never see raw JSON.
 */
#ifndef NANGO_SYNC_CONFIG_H
#define NANGO_SYNC_CONFIG_H

#include "postgres.h"
#include "nodes/pg_list.h"

#include "paging.h"

/* One name/value pair of headers or query_params, both palloc'd. */
typedef struct NameValue
{
	char	   *name;
	char	   *value;
} NameValue;

/* One entry of the columns argument: column name and dotted path. */
typedef struct ColumnPath
{
	char	   *column;
	char	   *path;			/* "$" is the whole record */
} ColumnPath;

typedef struct SyncConfig
{
	int64		id;
	char	   *name;
	Oid			owner;
	char	   *url;			/* http or https, absolute */
	char	   *method;			/* GET, POST, PUT or PATCH */
	List	   *headers;		/* of NameValue */
	List	   *query_params;	/* of NameValue, values as text */
	char	   *body;			/* JSON text sent as the body, or NULL */
	Oid			target_table;
	List	   *unique_key;		/* of char *, column names */
	char	   *response_path;	/* dotted path, or NULL */
	PagingConfig paging;
	List	   *columns;		/* of ColumnPath */
} SyncConfig;

/*
 * Checkers used by add_sync and by a run loading its sync.  Each raises
 * ERROR with ERRCODE_INVALID_PARAMETER_VALUE naming argname on bad input.
 * The jsonb arguments arrive as their text form (jsonb_out).
 */
extern char *sync_check_url(const char *argname, const char *url);
extern char *sync_check_method(const char *method);
extern List *sync_parse_name_values(const char *argname, const char *json,
									bool headers);
extern List *sync_parse_columns(const char *json);
extern void sync_check_path(const char *argname, const char *path,
							bool allow_root);

/* Splits a checked dotted path into its segments (List of char *). */
extern List *sync_path_segments(const char *path);

/*
 * Refuses text with non-ASCII characters, in a database whose encoding
 * jansson's UTF-8 does not match, for arguments that jansson reads.
 */
extern void sync_check_page_text(const char *argname, const char *text);

#endif							/* NANGO_SYNC_CONFIG_H */

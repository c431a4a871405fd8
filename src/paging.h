/*
 * paging.h
 *		Paging strategies: how the next request of a run is built from the
 *		previous page, and when a run has read its last page.
 *
 * A PagingState is the run's checkpoint: it is stored as JSON in
 * nango.sync_runs.checkpoint in the same transaction as the rows of the page
 * that produced it, so an interrupted run resumes from it.
 */
#ifndef NANGO_PAGING_H
#define NANGO_PAGING_H

#include "postgres.h"

typedef enum PagingType
{
	PAGING_NONE,				/* one request */
	PAGING_LINK_HEADER,
	PAGING_NEXT_URL,
	PAGING_CURSOR,
	PAGING_RECORD_CURSOR,
	PAGING_OFFSET,
	PAGING_PAGE
} PagingType;

typedef struct PagingConfig
{
	PagingType	type;
	char	   *path;			/* next_url, cursor: dotted path in the body */
	char	   *param;			/* cursor, record_cursor: parameter name */
	bool		in_body;		/* cursor: token goes in the JSON body */
	char	   *field;			/* record_cursor: dotted path in a record */
	char	   *offset_param;	/* offset */
	char	   *limit_param;	/* offset */
	int64		limit;			/* offset: page size */
	char	   *page_param;		/* page */
	int64		start;			/* page: first page number */
	char	   *size_param;		/* page: may be NULL */
	int64		size;			/* page: 0 when not known */
	char	   *has_more_path;	/* any type; NULL when unset */
	char	   *total_path;		/* any type; NULL when unset */
	int64		max_pages;		/* 0: no limit */
} PagingConfig;

/* Where the next request of a run starts; the run's checkpoint. */
typedef struct PagingState
{
	char	   *next_url;		/* link_header, next_url: absolute URL */
	char	   *token;			/* cursor, record_cursor */
	int64		offset;			/* offset */
	int64		page;			/* page */
	int64		pages;			/* pages read so far in this run */
	int64		records;		/* records read so far (for total_path) */
	bool		done;			/* the last page has been read */
} PagingState;

/*
 * Parses the paging argument (jsonb text, or NULL for one request), raising
 * ERROR with a hint naming the argument "paging" on anything malformed.
 */
extern void paging_parse(const char *json, PagingConfig *config);

/* The state of a run before its first request. */
extern void paging_initial_state(const PagingConfig *config,
								 PagingState *state);

/* Checkpoint as JSON text, and back (ERROR on a malformed checkpoint). */
extern char *paging_state_to_json(const PagingState *state);
extern void paging_state_from_json(const char *json, PagingState *state);

#endif							/* NANGO_PAGING_H */

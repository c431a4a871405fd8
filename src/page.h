/*
 * page.h
 *		Reading one page: the request it needs and what its response says.
 *
 * jansson reads a response's structure (where the records are, paging
 * tokens, has_more, totals).  The records themselves are handed to Postgres
 * as the page's raw text, so numbers keep every digit.
 */
#ifndef NANGO_PAGE_H
#define NANGO_PAGE_H

#include "postgres.h"
#include "nodes/pg_list.h"

#include "http.h"
#include "paging.h"
#include "sync_config.h"

/* Hash set of tokens and URLs seen in a run, for loop detection. */
typedef struct PageSeen PageSeen;

typedef struct PageRequest
{
	char	   *url;			/* absolute, with query params */
	char	   *body;			/* JSON text or NULL */
} PageRequest;

typedef struct PageResult
{
	List	   *records_path;	/* of char *: where the records are */
	bool		single_record;	/* the value at records_path is an object */
	int			nrecords;
	List	   *record_keys;	/* of char *: distinct top-level keys */
	PagingState next;			/* checkpoint after this page */
} PageResult;

/* The request for the page state points at. */
extern void page_build_request(const SyncConfig *sync,
							   const PagingState *state, PageRequest *req);

extern PageSeen *page_seen_create(MemoryContext mcxt);

/*
 * Checks a response and reads it: a non-2xx status, a body that is not
 * JSON, or records not where the path says raise ERROR with a message
 * for the run's error column.  Computes result->next from state (including
 * done, and pages/records advanced).  A token or URL already in seen raises
 * a pagination loop ERROR; new ones are added.
 */
extern void page_read_response(const SyncConfig *sync,
							   const PagingState *state,
							   const HttpResponse *resp, PageSeen *seen,
							   PageResult *result);

/* Called once from _PG_init, before anything uses jansson. */
extern void page_global_init(void);

/* "createdAt" -> "created_at"; palloc'd. */
extern char *page_snake_case(const char *key);

#endif							/* NANGO_PAGE_H */

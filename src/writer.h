/*
 * writer.h
 *		Writing a page of records into the sync's target table with one
 *		set-based statement through SPI.
 */
#ifndef NANGO_WRITER_H
#define NANGO_WRITER_H

#include "postgres.h"
#include "nodes/pg_list.h"

#include "page.h"
#include "sync_config.h"

typedef struct WriteCounts
{
	int64		records;		/* distinct records of the page */
	int64		inserted;
	int64		updated;
	int64		unchanged;
	int64		rejected;
} WriteCounts;

/*
 * add_sync's check of target_table and unique_key, run as the calling user:
 * the table exists, the caller may INSERT and UPDATE it, and unique_key
 * names exactly the columns of its primary key or of a unique index (no
 * expression, no predicate).  Raises ERROR with a hint otherwise.  Also
 * checks that every column named in columns exists.  Returns the table oid.
 */
extern Oid	writer_check_target(const char *target_table, List *unique_key,
								List *columns);

/*
 * Writes the records of one page.  Must run inside a transaction with SPI
 * connected, as the sync's owner.  body is the raw page text; page says
 * where its records are and which keys they have.  Records repeated within
 * the page: the last wins.  If the set-based statement fails, records are
 * retried one by one in subtransactions; each failing one is stored in
 * nango.rejected_records (run_id, page number) and counted as rejected.
 */
extern void writer_write_page(const SyncConfig *sync, int64 run_id,
							  int page_number, const char *body,
							  const PageResult *page, WriteCounts *counts);

#endif							/* NANGO_WRITER_H */

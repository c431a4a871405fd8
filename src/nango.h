/*
 * nango.h
 *		Settings and limits shared by every module of nango.
 *
 * nango keeps tables in sync with HTTP APIs.  The library is loaded through
 * shared_preload_libraries; a launcher starts one scheduler per database that
 * has the extension, and the scheduler starts one run worker per running sync.
 */
#ifndef NANGO_H
#define NANGO_H

#include "postgres.h"

/* Settings (see nango.c for their descriptions and bounds). */
extern int	nango_max_concurrent_runs;
extern int	nango_http_timeout;			/* seconds, whole request */
extern int	nango_max_response_size;	/* kilobytes, one page */
extern int	nango_run_history;			/* finished runs kept per sync */

/* Hard limits on what an API may send us, not settings. */
#define NANGO_MAX_REDIRECTS			5
#define NANGO_MAX_HEADER_BYTES		(256 * 1024)
#define NANGO_MAX_TOKEN_BYTES		8192
#define NANGO_MAX_REJECTED_KEPT		1000	/* rejected records kept per run */
#define NANGO_MAX_RESUMES			5		/* interrupted run restarts */

/* True when this backend is one of nango's own workers. */
extern bool nango_is_worker;

#endif							/* NANGO_H */

/*
 * workers.h
 *		The launcher, the per-database schedulers and the run workers, and
 *		the shared memory through which SQL functions wake them.
 */
#ifndef NANGO_WORKERS_H
#define NANGO_WORKERS_H

#include "postgres.h"
#include "postmaster/bgworker.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/timestamp.h"

/*
 * Databases with the extension one server can serve at once; more are left
 * out with a LOG.  A database without the extension holds no slot.
 */
#define NANGO_MAX_DATABASES 1024

typedef struct NangoDatabaseSlot
{
	Oid			dboid;			/* InvalidOid: free slot */
	PGPROC	   *scheduler;		/* running scheduler, or NULL */
	bool		want_scheduler; /* CREATE EXTENSION asked for one */
	TimestampTz hold_until;		/* no scheduler before (DROP DATABASE) */
} NangoDatabaseSlot;

typedef struct NangoShared
{
	LWLock	   *lock;
	PGPROC	   *launcher;
	NangoDatabaseSlot databases[NANGO_MAX_DATABASES];
} NangoShared;

extern NangoShared *nango_shared;

/* nango.c */
extern NangoDatabaseSlot *nango_database_slot(Oid dboid, bool create);
extern void nango_wake_scheduler_at_commit(void);
extern void nango_wake_launcher_at_commit(void);
extern bool nango_preloaded;
extern void nango_check_preloaded(void);
extern BackgroundWorkerHandle *nango_start_worker(const char *function,
												  const char *name,
												  const char *type,
												  Datum main_arg,
												  const void *extra,
												  size_t extra_len);

/* launcher.c */
extern void nango_register_launcher(void);
PGDLLEXPORT void nango_launcher_main(Datum arg);

/* scheduler.c */
PGDLLEXPORT void nango_scheduler_main(Datum arg);

/* run.c */
PGDLLEXPORT void nango_run_main(Datum arg);

/*
 * The lock a run worker holds for as long as it works on a run: an
 * advisory lock tag whose last field no SQL advisory function uses, so it
 * never meets a user's own advisory locks.
 */
#define NANGO_RUN_LOCK_FIELD4	0x4e47
static inline void
nango_run_locktag(LOCKTAG *tag, int64 run_id)
{
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (run_id >> 32),
						 (uint32) run_id, NANGO_RUN_LOCK_FIELD4);
}

/* What a scheduler passes to the run worker it starts. */
typedef struct NangoRunArgs
{
	Oid			dboid;
	int64		run_id;
} NangoRunArgs;

#endif							/* NANGO_WORKERS_H */

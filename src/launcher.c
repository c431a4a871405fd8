/*
 * launcher.c
 *		The launcher: one background worker per server that starts a
 *		scheduler for every database that has the extension.
 *
 * The launcher cannot see a database's pg_extension, so it starts a
 * scheduler once for each database that accepts connections; a scheduler
 * that finds no extension gives up its shared slot and exits, and the
 * launcher does not start one there again until CREATE EXTENSION asks for
 * it.  A scheduler that stopped for any other reason (its slot is still
 * there) is started again.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/tableam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "nango.h"
#include "workers.h"

/* How long the launcher waits before starting a failed scheduler again. */
#define SCHEDULER_RESTART_MS	1000

typedef struct LauncherEntry
{
	Oid			dboid;
	char		name[NAMEDATALEN];
	BackgroundWorkerHandle *handle;		/* NULL when none started */
	TimestampTz not_before;
	bool		no_extension;	/* its scheduler found none */
} LauncherEntry;

static LauncherEntry *entries = NULL;
static int	nentries = 0;

void
nango_register_launcher(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 1;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "nango");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "nango_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "nango launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "nango launcher");
	RegisterBackgroundWorker(&worker);
}

/*
 * Frees the shared slots of databases that are gone, so that creating and
 * dropping databases never uses up the slots.  A slot is only freed while
 * no scheduler holds it; a database created after the scan gets a fresh
 * slot on the next one.
 */
static void
forget_dropped_databases(LauncherEntry *fresh, int nfresh)
{
	LWLockAcquire(nango_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < NANGO_MAX_DATABASES; i++)
	{
		NangoDatabaseSlot *slot = &nango_shared->databases[i];
		bool		exists = false;

		if (slot->dboid == InvalidOid || slot->scheduler != NULL)
			continue;
		for (int j = 0; j < nfresh && !exists; j++)
			exists = (fresh[j].dboid == slot->dboid);
		if (!exists)
			memset(slot, 0, sizeof(*slot));
	}
	LWLockRelease(nango_shared->lock);
}

/*
 * Reads pg_database into entries, keeping the handles of databases still
 * there.  Only databases that accept connections and are no templates.
 */
static void
read_databases(void)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	LauncherEntry *fresh;
	int			nfresh = 0;
	int			capacity = 16;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	fresh = MemoryContextAllocZero(TopMemoryContext,
								   capacity * sizeof(LauncherEntry));

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while (HeapTupleIsValid(tup = heap_getnext(scan, ForwardScanDirection)))
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
		LauncherEntry *e;

		if (!db->datallowconn || db->datistemplate)
			continue;
		if (nfresh == capacity)
		{
			MemoryContext cxt = MemoryContextSwitchTo(TopMemoryContext);

			capacity *= 2;
			fresh = repalloc(fresh, capacity * sizeof(LauncherEntry));
			MemoryContextSwitchTo(cxt);
		}
		e = &fresh[nfresh++];
		memset(e, 0, sizeof(*e));
		e->dboid = db->oid;
		strlcpy(e->name, NameStr(db->datname), NAMEDATALEN);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(oldcxt);

	for (int i = 0; i < nfresh; i++)
		for (int j = 0; j < nentries; j++)
			if (entries[j].dboid == fresh[i].dboid)
			{
				fresh[i].handle = entries[j].handle;
				fresh[i].not_before = entries[j].not_before;
				fresh[i].no_extension = entries[j].no_extension;
				entries[j].handle = NULL;
			}
	for (int j = 0; j < nentries; j++)
		if (entries[j].handle != NULL)
			pfree(entries[j].handle);
	forget_dropped_databases(fresh, nfresh);
	if (entries != NULL)
		pfree(entries);
	entries = fresh;
	nentries = nfresh;
}

/* Starts the scheduler of one database; false when no slot is free. */
static bool
start_scheduler(LauncherEntry *e)
{
	char		name[BGW_MAXLEN];

	snprintf(name, sizeof(name), "nango scheduler for database %s", e->name);
	e->handle = nango_start_worker("nango_scheduler_main", name,
								   "nango scheduler",
								   ObjectIdGetDatum(e->dboid), NULL, 0);
	return e->handle != NULL;
}

/*
 * Starts the schedulers that should run and are not running.  Returns
 * the milliseconds until it should look again, or -1 for "when woken".
 */
static long
launch_schedulers(void)
{
	TimestampTz now = GetCurrentTimestamp();
	long		wait_ms = -1;

	for (int i = 0; i < nentries; i++)
	{
		LauncherEntry *e = &entries[i];
		NangoDatabaseSlot *slot;
		bool		wanted;
		TimestampTz hold_until = 0;
		pid_t		pid;

		if (e->handle != NULL &&
			GetBackgroundWorkerPid(e->handle, &pid) != BGWH_STOPPED)
			continue;
		LWLockAcquire(nango_shared->lock, LW_EXCLUSIVE);
		slot = nango_database_slot(e->dboid, false);
		if (e->handle != NULL)
		{
			/* A scheduler that found no extension gave its slot up. */
			pfree(e->handle);
			e->handle = NULL;
			e->not_before = TimestampTzPlusMilliseconds(now,
														SCHEDULER_RESTART_MS);
			if (slot == NULL)
				e->no_extension = true;
		}
		if (slot != NULL && slot->want_scheduler)
			e->no_extension = false;
		/* A scheduler started by an earlier launcher may still be there. */
		wanted = !e->no_extension && (slot == NULL || slot->scheduler == NULL);
		if (slot != NULL)
		{
			hold_until = slot->hold_until;
			slot->want_scheduler = false;
		}
		LWLockRelease(nango_shared->lock);

		if (!wanted)
			continue;
		if (hold_until > e->not_before)
			e->not_before = hold_until;
		if (e->not_before > now)
		{
			long		ms = TimestampDifferenceMilliseconds(now, e->not_before);

			wait_ms = (wait_ms < 0) ? ms : Min(wait_ms, ms);
			continue;
		}

		if (!start_scheduler(e))
		{
			/* No free worker slot: try again shortly. */
			e->not_before = TimestampTzPlusMilliseconds(now,
														SCHEDULER_RESTART_MS);
			wait_ms = (wait_ms < 0) ? SCHEDULER_RESTART_MS :
				Min(wait_ms, SCHEDULER_RESTART_MS);
		}
	}
	return wait_ms;
}

/* Exit callback: the launcher's latch is not to be set any more. */
static void
forget_launcher(int code, Datum arg)
{
	LWLockAcquire(nango_shared->lock, LW_EXCLUSIVE);
	if (nango_shared->launcher == MyProc)
		nango_shared->launcher = NULL;
	LWLockRelease(nango_shared->lock);
}

/*
 * Main loop of the launcher: read the databases, start schedulers, sleep
 * on the latch until a scheduler stops or CREATE EXTENSION commits.
 */
void
nango_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("nango launcher");

	LWLockAcquire(nango_shared->lock, LW_EXCLUSIVE);
	nango_shared->launcher = MyProc;
	LWLockRelease(nango_shared->lock);
	before_shmem_exit(forget_launcher, (Datum) 0);

	ereport(LOG, (errmsg("nango launcher started")));

	for (;;)
	{
		long		wait_ms;
		int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		read_databases();
		wait_ms = launch_schedulers();
		if (wait_ms >= 0)
			events |= WL_TIMEOUT;

		(void) WaitLatch(MyLatch, events, wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

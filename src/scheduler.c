/*
 * scheduler.c
 *		The scheduler: one background worker per database with the
 *		extension, starting a run worker for every run that is due.
 *
 * Each pass is one short transaction: it creates the runs of syncs whose
 * time has come, finds queued runs and runs left "running" by a worker
 * that died (nobody holds their run lock), and starts workers for them up
 * to nango.max_concurrent_runs.  Between passes it sleeps on its latch
 * until the next sync is due; SQL functions and finishing run workers set
 * the latch.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "nango.h"
#include "workers.h"

/* Longest sleep between passes; WaitLatch truncates a timeout to int. */
#define SCHEDULER_MAX_WAIT_MS	(3600L * 1000)

typedef struct RunSlot
{
	int64		run_id;
	BackgroundWorkerHandle *handle;
} RunSlot;

static RunSlot *run_slots = NULL;
static int	nrun_slots = 0;

/* Set when a run worker could not be registered; try again soon. */
static bool retry_soon = false;
static bool out_of_workers = false;

/*
 * Takes this database's shared slot, through which SQL functions wake this
 * scheduler.  A second scheduler for the database leaves at once.
 */
static void
claim_database_slot(Oid dboid)
{
	NangoDatabaseSlot *slot;

	LWLockAcquire(nango_shared->lock, LW_EXCLUSIVE);
	slot = nango_database_slot(dboid, true);
	if (slot != NULL && slot->scheduler != NULL && slot->scheduler != MyProc)
	{
		LWLockRelease(nango_shared->lock);
		ereport(LOG,
				(errmsg("nango scheduler for this database is already running")));
		proc_exit(0);
	}
	if (slot == NULL)
	{
		LWLockRelease(nango_shared->lock);
		ereport(LOG,
				(errmsg("nango cannot serve this database: more than %d "
						"databases have the extension", NANGO_MAX_DATABASES)));
		proc_exit(0);
	}
	slot->scheduler = MyProc;
	LWLockRelease(nango_shared->lock);
}

/*
 * Exit callback: gives the slot back.  arg is true when the scheduler
 * leaves because the database has no extension.
 */
static void
release_database_slot(int code, Datum arg)
{
	NangoDatabaseSlot *slot;

	if (nango_shared == NULL)
		return;
	LWLockAcquire(nango_shared->lock, LW_EXCLUSIVE);
	slot = nango_database_slot(MyDatabaseId, false);
	if (slot != NULL && slot->scheduler == MyProc)
	{
		/*
		 * Without the extension, the database holds no slot, unless a
		 * CREATE EXTENSION committed meanwhile and asks for a scheduler.
		 */
		if (DatumGetBool(arg) && !slot->want_scheduler)
			memset(slot, 0, sizeof(*slot));
		else
			slot->scheduler = NULL;
	}
	/* A launcher that did not start this scheduler learns it stopped. */
	if (nango_shared->launcher != NULL)
		SetLatch(&nango_shared->launcher->procLatch);
	LWLockRelease(nango_shared->lock);
}

/* Forgets run workers that have stopped. */
static void
reap_run_workers(void)
{
	int			kept = 0;

	for (int i = 0; i < nrun_slots; i++)
	{
		pid_t		pid;

		if (GetBackgroundWorkerPid(run_slots[i].handle, &pid) == BGWH_STOPPED)
		{
			pfree(run_slots[i].handle);
			continue;
		}
		run_slots[kept++] = run_slots[i];
	}
	nrun_slots = kept;
}

static bool
run_is_ours(int64 run_id)
{
	for (int i = 0; i < nrun_slots; i++)
		if (run_slots[i].run_id == run_id)
			return true;
	return false;
}

/*
 * True when no worker holds the run's lock, so no worker is working on it.
 * Probes with a transaction-level lock that commit releases.
 */
static bool
run_is_unattended(int64 run_id)
{
	LOCKTAG		tag;

	nango_run_locktag(&tag, run_id);
	if (LockAcquire(&tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	LockRelease(&tag, ExclusiveLock, false);
	return true;
}

/* Starts a worker for the run and remembers its handle. */
static bool
start_run_worker(int64 run_id)
{
	NangoRunArgs args;
	BackgroundWorkerHandle *handle;
	char		name[BGW_MAXLEN];

	args.dboid = MyDatabaseId;
	args.run_id = run_id;
	snprintf(name, sizeof(name), "nango run %lld", (long long) run_id);
	handle = nango_start_worker("nango_run_main", name, "nango run",
								(Datum) 0, &args, sizeof(args));
	if (handle == NULL)
		return false;

	run_slots = repalloc(run_slots, (nrun_slots + 1) * sizeof(RunSlot));
	run_slots[nrun_slots].run_id = run_id;
	run_slots[nrun_slots].handle = handle;
	nrun_slots++;
	return true;
}

/*
 * Queues a run for every sync that is due and has none, then starts
 * workers for queued runs and for unattended running ones, oldest first.
 */
static void
start_due_runs(void)
{
	int			ret;
	uint64		n;
	int64	   *run_ids;
	int			others = 0;

	ret = SPI_execute("INSERT INTO nango.sync_runs (sync_id, full_refresh) "
					  "SELECT s.id, true FROM nango.syncs s "
					  "WHERE NOT s.paused AND s.next_run_at <= now() "
					  "AND NOT EXISTS (SELECT 1 FROM nango.sync_runs r "
					  "  WHERE r.sync_id = s.id "
					  "  AND r.status IN ('queued', 'running')) "
					  "ORDER BY s.next_run_at "
					  "FOR SHARE OF s SKIP LOCKED "
					  "ON CONFLICT (sync_id) "
					  "WHERE status IN ('queued', 'running') DO NOTHING",
					  false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not queue due runs: %s", SPI_result_code_string(ret));

	/*
	 * Not read-only: a read-only statement would use the pass's first
	 * snapshot and miss the runs just queued.  A queued run of a paused
	 * sync waits for resume_sync; an interrupted one goes on.
	 */
	ret = SPI_execute("SELECT r.id FROM nango.sync_runs r "
					  "JOIN nango.syncs s ON s.id = r.sync_id "
					  "WHERE r.status = 'running' "
					  "OR (r.status = 'queued' AND NOT s.paused) "
					  "ORDER BY r.status = 'running' DESC, r.id",
					  false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read queued runs: %s", SPI_result_code_string(ret));

	n = SPI_processed;
	run_ids = palloc(sizeof(int64) * (n + 1));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		run_ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
												 SPI_tuptable->tupdesc, 1,
												 &isnull));
	}

	/*
	 * Runs that another worker holds (started by this scheduler's
	 * predecessor, say) count against the limit too; running runs come
	 * first, so they are counted before a queued one may start.
	 */
	for (uint64 i = 0; i < n; i++)
	{
		if (run_is_ours(run_ids[i]))
			continue;
		if (!run_is_unattended(run_ids[i]))
		{
			others++;
			continue;
		}
		if (nrun_slots + others >= nango_max_concurrent_runs)
		{
			/* Their ends are not signalled to us: look again in a second. */
			if (others > 0)
				retry_soon = true;
			break;
		}
		if (!start_run_worker(run_ids[i]))
		{
			/* Said once until a worker starts again, not at every retry. */
			if (!out_of_workers)
				ereport(LOG,
						(errmsg("nango could not start a worker for run %lld: "
								"no background worker slot is free",
								(long long) run_ids[i]),
						 errhint("Raise max_worker_processes or lower "
								 "nango.max_concurrent_runs.")));
			out_of_workers = true;
			retry_soon = true;
			break;
		}
		out_of_workers = false;
	}
}

/*
 * Milliseconds until the next sync without an active run is due, or -1
 * when no sync is waiting on the clock.
 */
static long
time_to_next_run(void)
{
	int			ret;
	bool		isnull;
	Datum		d;

	ret = SPI_execute("SELECT min(s.next_run_at) FROM nango.syncs s "
					  "WHERE NOT s.paused AND s.next_run_at IS NOT NULL "
					  "AND NOT EXISTS (SELECT 1 FROM nango.sync_runs r "
					  "  WHERE r.sync_id = s.id "
					  "  AND r.status IN ('queued', 'running'))",
					  false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read next run time");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return -1;

	/*
	 * A sync still due after this pass queued every due one was skipped,
	 * being locked by a transaction that changes it: look again in a
	 * second rather than spin.  WaitLatch's timeout is an int inside: look
	 * again at least hourly.
	 */
	if (DatumGetTimestampTz(d) <= GetCurrentTransactionStartTimestamp())
		return 1000;
	return Min(TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
											   DatumGetTimestampTz(d)) + 1,
			   SCHEDULER_MAX_WAIT_MS);
}

/*
 * One pass of the scheduler in one transaction.  Returns false when the
 * extension is gone, so the scheduler should end.
 */
static bool
schedule_pass(long *wait_ms)
{
	bool		have_extension;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "nango: starting due runs");

	have_extension = OidIsValid(get_extension_oid("nango", true));
	if (have_extension)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		start_due_runs();
		*wait_ms = time_to_next_run();
		SPI_finish();
	}

	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
	return have_extension;
}

/*
 * Main loop of a database's scheduler.  An error in a pass is logged and
 * the pass retried after a pause; it never takes the runs down with it.
 */
void
nango_scheduler_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	nango_is_worker = true;
	pgstat_report_appname("nango scheduler");
	claim_database_slot(dboid);
	before_shmem_exit(release_database_slot, BoolGetDatum(false));
	run_slots = MemoryContextAlloc(TopMemoryContext, sizeof(RunSlot));

	for (;;)
	{
		long		wait_ms = -1;
		int			events = WL_LATCH_SET | WL_EXIT_ON_PM_DEATH;
		bool		keep_going = true;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		reap_run_workers();
		retry_soon = false;
		PG_TRY();
		{
			keep_going = schedule_pass(&wait_ms);
		}
		PG_CATCH();
		{
			EmitErrorReport();
			FlushErrorState();
			AbortCurrentTransaction();
			retry_soon = true;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(TopMemoryContext);

		if (!keep_going)
		{
			/* The extension was dropped: stop its runs and step aside. */
			for (int i = 0; i < nrun_slots; i++)
				TerminateBackgroundWorker(run_slots[i].handle);
			before_shmem_exit(release_database_slot, BoolGetDatum(true));
			proc_exit(0);
		}

		if (retry_soon)
			wait_ms = (wait_ms < 0) ? 1000 : Min(wait_ms, 1000);
		if (wait_ms >= 0)
			events |= WL_TIMEOUT;
		(void) WaitLatch(MyLatch, events, wait_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

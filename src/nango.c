/*
 * nango.c
 *		Module entry: settings, shared memory, and the hooks that wake
 *		nango's workers when a transaction that changed a sync commits.
 *
 * The library must be in shared_preload_libraries: _PG_init then registers
 * the launcher, which starts a scheduler for every database that has the
 * extension.  SQL functions never talk to workers directly; they ask for a
 * wake-up that happens at commit, so a worker never sees uncommitted work.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include <signal.h>

#include "http.h"
#include "page.h"
#include "nango.h"
#include "workers.h"

PG_MODULE_MAGIC;

/* Names that changed in later majors. */
#if PG_VERSION_NUM >= 160000
#define nango_database_ownercheck(dboid, roleid) \
	object_ownercheck(DatabaseRelationId, (dboid), (roleid))
#else
#define nango_database_ownercheck(dboid, roleid) \
	pg_database_ownercheck((dboid), (roleid))
#endif
#if PG_VERSION_NUM >= 170000
#define nango_local_beentry(i) pgstat_get_local_beentry_by_index(i)
#else
#define nango_local_beentry(i) pgstat_fetch_stat_local_beentry(i)
#endif

int			nango_max_concurrent_runs = 4;
int			nango_http_timeout = 60;
int			nango_max_response_size = 51200;
int			nango_run_history = 100;

bool		nango_is_worker = false;
bool		nango_preloaded = false;
NangoShared *nango_shared = NULL;

static bool wake_scheduler_at_commit = false;
static bool wake_launcher_at_commit = false;
static bool want_scheduler_at_commit = false;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ProcessUtility_hook_type prev_process_utility_hook = NULL;

void		_PG_init(void);
static void nango_shmem_request(void);
static void nango_shmem_startup(void);
static void nango_xact_callback(XactEvent event, void *arg);
static void nango_process_utility(PlannedStmt *pstmt, const char *queryString,
								  bool readOnlyTree,
								  ProcessUtilityContext context,
								  ParamListInfo params,
								  QueryEnvironment *queryEnv,
								  DestReceiver *dest, QueryCompletion *qc);

static void
define_settings(void)
{
	DefineCustomIntVariable("nango.max_concurrent_runs",
							"Runs of syncs that one database may have at once.",
							"Each running run uses one background worker, so "
							"max_worker_processes must leave room for them.",
							&nango_max_concurrent_runs,
							4, 1, 64,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("nango.http_timeout",
							"Longest time one HTTP request of a run may take.",
							NULL,
							&nango_http_timeout,
							60, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("nango.max_response_size",
							"Largest response body accepted for one page.",
							"A larger response fails the run.  At most 256MB, "
							"the most a jsonb value holds.",
							&nango_max_response_size,
							51200, 64, 262144,
							PGC_SIGHUP, GUC_UNIT_KB, NULL, NULL, NULL);
	DefineCustomIntVariable("nango.run_history",
							"Finished runs kept in nango.sync_runs per sync.",
							"Older runs and their rejected records are deleted "
							"when a run finishes.",
							&nango_run_history,
							100, 1, 100000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("nango");
}

void
_PG_init(void)
{
	define_settings();
	http_global_init();
	page_global_init();

	RegisterXactCallback(nango_xact_callback, NULL);
	prev_process_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = nango_process_utility;

	if (!process_shared_preload_libraries_in_progress)
		return;

	nango_preloaded = true;
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = nango_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = nango_shmem_startup;
	nango_register_launcher();
}

/*
 * Raises the error every SQL function gives when the library was loaded
 * late, so no sync is registered that no worker would ever run.
 */
void
nango_check_preloaded(void)
{
	if (!nango_preloaded || nango_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("nango is not loaded through shared_preload_libraries"),
				 errdetail("Syncs are run by a background worker that only "
						   "starts when the server preloads the library."),
				 errhint("Add 'nango' to shared_preload_libraries in "
						 "postgresql.conf and restart the server.")));
}

static void
nango_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(NangoShared)));
	RequestNamedLWLockTranche("nango", 1);
}

static void
nango_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	nango_shared = ShmemInitStruct("nango", sizeof(NangoShared), &found);
	if (!found)
	{
		memset(nango_shared, 0, sizeof(NangoShared));
		nango_shared->lock = &(GetNamedLWLockTranche("nango"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * The slot of a database, or NULL.  With create, a free slot is taken for
 * it.  The caller holds nango_shared->lock exclusively when create is set.
 */
NangoDatabaseSlot *
nango_database_slot(Oid dboid, bool create)
{
	NangoDatabaseSlot *free_slot = NULL;

	for (int i = 0; i < NANGO_MAX_DATABASES; i++)
	{
		NangoDatabaseSlot *slot = &nango_shared->databases[i];

		if (slot->dboid == dboid)
			return slot;
		if (slot->dboid == InvalidOid && free_slot == NULL)
			free_slot = slot;
	}
	if (!create || free_slot == NULL)
		return NULL;

	memset(free_slot, 0, sizeof(NangoDatabaseSlot));
	free_slot->dboid = dboid;
	return free_slot;
}

/*
 * Starts a dynamic worker of nango that notifies this process when it
 * starts and stops, and is never restarted by the postmaster (its starter
 * decides).  The handle is kept in TopMemoryContext, since it outlives the
 * caller's transaction; NULL when no worker slot is free.
 */
BackgroundWorkerHandle *
nango_start_worker(const char *function, const char *name, const char *type,
				   Datum main_arg, const void *extra, size_t extra_len)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext oldcxt;

	Assert(extra_len <= BGW_EXTRALEN);
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "nango", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker.bgw_name, name, BGW_MAXLEN);
	strlcpy(worker.bgw_type, type, BGW_MAXLEN);
	worker.bgw_main_arg = main_arg;
	worker.bgw_notify_pid = MyProcPid;
	if (extra_len > 0)
		memcpy(worker.bgw_extra, extra, extra_len);

	oldcxt = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		handle = NULL;
	MemoryContextSwitchTo(oldcxt);
	return handle;
}

void
nango_wake_scheduler_at_commit(void)
{
	wake_scheduler_at_commit = true;
}

void
nango_wake_launcher_at_commit(void)
{
	wake_launcher_at_commit = true;
	want_scheduler_at_commit = true;
}

/*
 * At commit, sets the latch of this database's scheduler and, after
 * CREATE EXTENSION, the launcher's, so they act on what just committed.
 */
static void
nango_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (nango_shared == NULL)
				break;
			LWLockAcquire(nango_shared->lock, LW_EXCLUSIVE);
			if (want_scheduler_at_commit)
			{
				NangoDatabaseSlot *slot;

				slot = nango_database_slot(MyDatabaseId, true);
				if (slot != NULL)
					slot->want_scheduler = true;
			}
			if (wake_launcher_at_commit)
			{
				if (nango_shared->launcher != NULL)
					SetLatch(&nango_shared->launcher->procLatch);
			}
			if (wake_scheduler_at_commit)
			{
				NangoDatabaseSlot *slot;

				slot = nango_database_slot(MyDatabaseId, false);
				if (slot != NULL && slot->scheduler != NULL)
					SetLatch(&slot->scheduler->procLatch);
			}
			LWLockRelease(nango_shared->lock);
			wake_launcher_at_commit = false;
			want_scheduler_at_commit = false;
			wake_scheduler_at_commit = false;
			break;
		case XACT_EVENT_PREPARE:
			/*
			 * COMMIT PREPARED wakes nobody: a scheduler's hourly look finds
			 * the syncs it changed; a CREATE EXTENSION waits for the next
			 * server start (README, Limitations).
			 */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			wake_launcher_at_commit = false;
			want_scheduler_at_commit = false;
			wake_scheduler_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * Ends nango's workers connected to a database, so that DROP DATABASE or
 * ALTER DATABASE RENAME does not wait on them, and keeps the launcher from
 * starting them again for a while.
 */
static void
stop_database_workers(const char *dbname)
{
	Oid			dboid = get_database_oid(dbname, true);
	int			nbackends;

	/* The command refuses the current database before touching it. */
	if (!OidIsValid(dboid) || dboid == MyDatabaseId || nango_shared == NULL)
		return;
	/* Only for a caller the command will let through; it refuses others. */
	if (!nango_database_ownercheck(dboid, GetUserId()))
		return;

	LWLockAcquire(nango_shared->lock, LW_EXCLUSIVE);
	{
		NangoDatabaseSlot *slot = nango_database_slot(dboid, false);

		if (slot != NULL)
			slot->hold_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   10000);
	}
	LWLockRelease(nango_shared->lock);

	nbackends = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= nbackends; i++)
	{
		LocalPgBackendStatus *local = nango_local_beentry(i);
		PgBackendStatus *be;
		const char *type;

		if (local == NULL)
			continue;
		be = &local->backendStatus;
		if (be->st_databaseid != dboid || be->st_backendType != B_BG_WORKER)
			continue;
		type = GetBackgroundWorkerTypeByPid(be->st_procpid);
		if (type != NULL && strncmp(type, "nango", 5) == 0)
			kill(be->st_procpid, SIGTERM);
	}
	pgstat_clear_snapshot();
}

/*
 * Watches the statements that concern nango's workers: DROP EXTENSION
 * wakes the scheduler at commit, CREATE DATABASE the launcher; DROP and
 * RENAME of a database, and CREATE DATABASE from it as a template, first
 * stop the workers connected to it.  (CREATE
 * EXTENSION wakes the launcher from the extension's script.)
 */
static void
nango_process_utility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;

	if (IsA(parsetree, DropdbStmt))
		stop_database_workers(((DropdbStmt *) parsetree)->dbname);
	else if (IsA(parsetree, RenameStmt) &&
			 ((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
		stop_database_workers(((RenameStmt *) parsetree)->subname);
	else if (IsA(parsetree, DropStmt) &&
			 ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
		nango_wake_scheduler_at_commit();
	else if (IsA(parsetree, CreatedbStmt))
	{
		ListCell   *lc;

		/* The template may have no other users while it is copied. */
		foreach(lc, ((CreatedbStmt *) parsetree)->options)
		{
			DefElem    *opt = lfirst(lc);

			if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
				stop_database_workers(defGetString(opt));
		}
		/* A copy of a database with the extension needs its scheduler. */
		wake_launcher_at_commit = true;
	}

	if (prev_process_utility_hook)
		prev_process_utility_hook(pstmt, queryString, readOnlyTree, context,
								  params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context,
								params, queryEnv, dest, qc);
}
